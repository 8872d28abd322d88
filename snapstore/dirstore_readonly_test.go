package snapstore_test

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/internal/snaptest"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// dirNames returns the names of the files in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names
}

func TestDirStoreReadOnly(t *testing.T) {
	t.Run("does not create the directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "absent")
		_, err := snapstore.NewDirStore(dir, snapstore.WithReadOnly())
		require.ErrorIs(t, err, fs.ErrNotExist)
		assert.NoDirExists(t, dir)
	})
	t.Run("refuses a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(file, nil, 0o600))
		_, err := snapstore.NewDirStore(file, snapstore.WithReadOnly())
		require.ErrorContains(t, err, "not a directory")
	})
	t.Run("removes nothing and writes nothing", func(t *testing.T) {
		dir := t.TempDir()
		w, err := snapstore.NewDirStore(dir)
		require.NoError(t, err)
		for i := range 3 {
			_, err := w.Save(t.Context(), snaptest.Snapshot(i, 10))
			require.NoError(t, err)
		}
		// What a writer leaves mid-save, or a crash leaves: the writable
		// store would remove them, a reader must not.
		require.NoError(t, os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("partial"), 0o600))
		orphan(t, dir, "HALF", 10)
		before := dirNames(t, dir)

		r, err := snapstore.NewDirStore(dir, snapstore.WithReadOnly(), snapstore.WithMaxCount(1))
		require.NoError(t, err)
		list, err := r.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"SNAP02", "SNAP01", "SNAP00"}, ids(list), "no retention, and no orphan listed")
		f, info, err := r.Open(t.Context(), "SNAP01")
		require.NoError(t, err)
		data, err := io.ReadAll(f)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		assert.Equal(t, snaptest.Snapshot(1, 10).Data, data)
		assert.Equal(t, filepath.Join(dir, "SNAP01.trace"), info.Path)

		_, err = r.Save(t.Context(), snaptest.Snapshot(9, 10))
		require.ErrorIs(t, err, snapstore.ErrReadOnly)
		require.ErrorIs(t, r.AddSpans(t.Context(), "SNAP01", []snapstore.SpanRef{{SpanID: "a"}}), snapstore.ErrReadOnly)
		assert.Equal(t, before, dirNames(t, dir), "the directory is as the writer left it")
		_, info, err = w.Open(t.Context(), "SNAP01")
		require.NoError(t, err)
		assert.Empty(t, info.Spans)
	})
	t.Run("follows a live writer", func(t *testing.T) {
		dir := t.TempDir()
		w, err := snapstore.NewDirStore(dir, snapstore.WithMaxCount(2))
		require.NoError(t, err)
		r, err := snapstore.NewDirStore(dir, snapstore.WithReadOnly())
		require.NoError(t, err)
		list, err := r.List(t.Context())
		require.NoError(t, err)
		assert.Empty(t, list)

		_, err = w.Save(t.Context(), snaptest.Snapshot(1, 10))
		require.NoError(t, err)
		require.NoError(t, w.AddSpans(t.Context(), "SNAP01", []snapstore.SpanRef{{SpanID: "a", Verdict: "slow"}}))
		f, info, err := r.Open(t.Context(), "SNAP01")
		require.NoError(t, err)
		assert.Equal(t, "slow", info.Spans[0].Verdict, "a reader sees the spans added since it opened")

		// The writer's retention removes SNAP01 while the reader holds it
		// open: the reader no longer finds it, and reads what it opened.
		for i := 2; i <= 3; i++ {
			_, err := w.Save(t.Context(), snaptest.Snapshot(i, 10))
			require.NoError(t, err)
		}
		list, err = r.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"SNAP03", "SNAP02"}, ids(list))
		_, _, err = r.Open(t.Context(), "SNAP01")
		require.ErrorIs(t, err, snapstore.ErrNotFound)
		data, err := io.ReadAll(f)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		assert.Equal(t, snaptest.Snapshot(1, 10).Data, data)
	})
}
