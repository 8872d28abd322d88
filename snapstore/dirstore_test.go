package snapstore_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/internal/snaptest"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

func ids(infos []snapstore.Info) []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.ID
	}
	return out
}

func TestDirStoreSaveListOpen(t *testing.T) {
	st, err := snapstore.NewDirStore(filepath.Join(t.TempDir(), "nested", "snaps"))
	require.NoError(t, err)

	s := snaptest.Snapshot(1, 1000)
	info, err := st.Save(t.Context(), s)
	require.NoError(t, err)
	assert.Equal(t, s.ID, info.ID)
	assert.Equal(t, int64(1000), info.Size)
	assert.Len(t, info.SHA256, 64)
	assert.True(t, info.WindowEnd.Equal(s.End))

	_, err = st.Save(t.Context(), snaptest.Snapshot(2, 10))
	require.NoError(t, err)

	list, err := st.List(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"SNAP02", "SNAP01"}, ids(list), "newest first")

	f, got, err := st.Open(t.Context(), "SNAP01")
	require.NoError(t, err)
	defer f.Close()
	data, err := io.ReadAll(f)
	require.NoError(t, err)
	assert.Equal(t, s.Data, data)
	assert.Equal(t, info.SHA256, got.SHA256)

	p, err := st.Path("SNAP01")
	require.NoError(t, err)
	assert.FileExists(t, p)
}

func TestDirStoreNotFoundAndInvalid(t *testing.T) {
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	_, _, err = st.Open(t.Context(), "NOPE")
	require.ErrorIs(t, err, snapstore.ErrNotFound)
	for _, id := range []string{"", "../etc/passwd", "a/b", "..", "a.trace", "x\x00", string(make([]byte, 65))} {
		_, _, err = st.Open(t.Context(), id)
		require.ErrorIs(t, err, snapstore.ErrInvalidID, "%q", id)
		s := snaptest.Snapshot(1, 1)
		s.ID = id
		_, err = st.Save(t.Context(), s)
		require.ErrorIs(t, err, snapstore.ErrInvalidID, "%q", id)
		_, err = st.Path(id)
		require.ErrorIs(t, err, snapstore.ErrInvalidID, "%q", id)
	}
}

func TestDirStoreRetention(t *testing.T) {
	t.Run("count", func(t *testing.T) {
		st, err := snapstore.NewDirStore(t.TempDir(), snapstore.WithMaxCount(3))
		require.NoError(t, err)
		for i := range 6 {
			_, err := st.Save(t.Context(), snaptest.Snapshot(i, 10))
			require.NoError(t, err)
		}
		list, err := st.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"SNAP05", "SNAP04", "SNAP03"}, ids(list))
		entries, err := os.ReadDir(st.Dir())
		require.NoError(t, err)
		assert.Len(t, entries, 6, "a trace and a description per kept snapshot, nothing else")
	})
	t.Run("bytes", func(t *testing.T) {
		st, err := snapstore.NewDirStore(t.TempDir(), snapstore.WithMaxTotalBytes(250))
		require.NoError(t, err)
		for i := range 5 {
			_, err := st.Save(t.Context(), snaptest.Snapshot(i, 100))
			require.NoError(t, err)
		}
		list, err := st.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"SNAP04", "SNAP03"}, ids(list))
	})
	t.Run("the newest is kept even when over the limit", func(t *testing.T) {
		st, err := snapstore.NewDirStore(t.TempDir(), snapstore.WithMaxTotalBytes(50))
		require.NoError(t, err)
		for i := range 3 {
			_, err := st.Save(t.Context(), snaptest.Snapshot(i, 100))
			require.NoError(t, err)
		}
		list, err := st.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"SNAP02"}, ids(list))
	})
}

func TestDirStoreIgnoresPartialWrites(t *testing.T) {
	dir := t.TempDir()
	st, err := snapstore.NewDirStore(dir)
	require.NoError(t, err)
	_, err = st.Save(t.Context(), snaptest.Snapshot(1, 10))
	require.NoError(t, err)

	// What a crash can leave: a temporary file, and a trace whose
	// description was never written.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("partial"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "HALF.trace"), []byte("half"), 0o600))

	list, err := st.List(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"SNAP01"}, ids(list))
	_, _, err = st.Open(t.Context(), "HALF")
	require.ErrorIs(t, err, snapstore.ErrNotFound)

	_, err = snapstore.NewDirStore(dir)
	require.NoError(t, err)
	assert.NoFileExists(t, filepath.Join(dir, ".tmp-123"), "a new store removes stale temporary files")
}

func TestDirStoreUnwritable(t *testing.T) {
	// Permission bits do not stop root, who runs CI; a file standing where
	// the directory should be, or a directory that vanished, fails for all.
	parent := t.TempDir()
	blocker := filepath.Join(parent, "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	_, err := snapstore.NewDirStore(filepath.Join(blocker, "snaps"))
	require.Error(t, err)

	dir := filepath.Join(parent, "snaps")
	st, err := snapstore.NewDirStore(dir)
	require.NoError(t, err)
	require.NoError(t, os.RemoveAll(dir))
	_, err = st.Save(t.Context(), snaptest.Snapshot(1, 10))
	require.Error(t, err, "the directory vanished")
	_, err = st.List(t.Context())
	require.Error(t, err)
}

func TestDirStoreAddSpans(t *testing.T) {
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	_, err = st.Save(t.Context(), snaptest.Snapshot(1, 10))
	require.NoError(t, err)
	a := snapstore.SpanRef{TraceID: "t", SpanID: "a", Name: "GET /a", Reason: "latency", Verdict: "slow"}
	b := snapstore.SpanRef{TraceID: "t", SpanID: "b", Name: "GET /b", Reason: "error"}
	require.NoError(t, st.AddSpans(t.Context(), "SNAP01", []snapstore.SpanRef{a}))
	require.NoError(t, st.AddSpans(t.Context(), "SNAP01", []snapstore.SpanRef{b}))
	f, info, err := st.Open(t.Context(), "SNAP01")
	require.NoError(t, err)
	f.Close()
	assert.Equal(t, []snapstore.SpanRef{a, b}, info.Spans)
	require.ErrorIs(t, st.AddSpans(t.Context(), "NOPE", nil), snapstore.ErrNotFound)
	require.ErrorIs(t, st.AddSpans(t.Context(), "../x", nil), snapstore.ErrInvalidID)
}

// traceBytes returns the total size of the trace files in dir, and the
// names of the traces without a description beside them.
func traceBytes(t *testing.T, dir string) (total int64, orphans []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".trace")
		if !ok {
			continue
		}
		fi, err := e.Info()
		require.NoError(t, err)
		total += fi.Size()
		if _, err := os.Stat(filepath.Join(dir, id+".json")); err != nil {
			orphans = append(orphans, e.Name())
		}
	}
	return total, orphans
}

// orphan writes what a crash between Save's renames, or between prune's
// removes, leaves: a trace without its description.
func orphan(t *testing.T, dir, id string, size int) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, id+".trace"), make([]byte, size), 0o600))
}

// Regression: orphaned traces escaped retention. A trace left without its
// description was never counted or removed: five such crashes held
// 7.0 MiB under a 3 MiB cap, forever.
func TestDirStoreOrphanedTracesEscapeRetention(t *testing.T) {
	const maxBytes = 3 << 20
	t.Run("left by a previous process", func(t *testing.T) {
		dir := t.TempDir()
		st, err := snapstore.NewDirStore(dir, snapstore.WithMaxTotalBytes(maxBytes))
		require.NoError(t, err)
		_, err = st.Save(t.Context(), snaptest.Snapshot(1, 1<<20))
		require.NoError(t, err)
		for i := range 5 {
			orphan(t, dir, fmt.Sprintf("ORPHAN%d", i), 1400<<10)
		}

		st, err = snapstore.NewDirStore(dir, snapstore.WithMaxTotalBytes(maxBytes))
		require.NoError(t, err)
		total, orphans := traceBytes(t, dir)
		assert.Empty(t, orphans, "a new store removes orphaned traces")
		assert.Equal(t, int64(1<<20), total)
		list, err := st.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"SNAP01"}, ids(list), "complete snapshots are kept")
	})
	t.Run("left while running", func(t *testing.T) {
		dir := t.TempDir()
		st, err := snapstore.NewDirStore(dir, snapstore.WithMaxTotalBytes(maxBytes))
		require.NoError(t, err)
		for i := range 5 {
			orphan(t, dir, fmt.Sprintf("ORPHAN%d", i), 1400<<10)
		}
		for i := range 4 {
			_, err := st.Save(t.Context(), snaptest.Snapshot(i, 1<<20))
			require.NoError(t, err)
			total, orphans := traceBytes(t, dir)
			assert.Empty(t, orphans, "retention removes orphaned traces")
			assert.LessOrEqual(t, total, int64(maxBytes), "bytes held on disk after Save %d", i)
		}
		list, err := st.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"SNAP03", "SNAP02", "SNAP01"}, ids(list))
	})
	t.Run("a description without its trace is not listed", func(t *testing.T) {
		dir := t.TempDir()
		st, err := snapstore.NewDirStore(dir)
		require.NoError(t, err)
		for i := 1; i <= 2; i++ {
			_, err := st.Save(t.Context(), snaptest.Snapshot(i, 10))
			require.NoError(t, err)
		}
		require.NoError(t, os.Remove(filepath.Join(dir, "SNAP01.trace")))

		list, err := st.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"SNAP02"}, ids(list), "only servable snapshots are listed")
		_, _, err = st.Open(t.Context(), "SNAP01")
		require.ErrorIs(t, err, snapstore.ErrNotFound)

		_, err = st.Save(t.Context(), snaptest.Snapshot(3, 10))
		require.NoError(t, err)
		assert.NoFileExists(t, filepath.Join(dir, "SNAP01.json"), "retention removes the description")
	})
}
