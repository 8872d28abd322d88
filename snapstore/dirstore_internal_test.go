package snapstore

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// volume is a fake file system volume of a fixed capacity holding dir. Its
// usage is the size of the files actually in dir, so that removing a file
// frees space as it would on a real volume. Its write writes what fits and
// fails like write(2) on a full volume.
type volume struct {
	t        *testing.T
	dir      string
	capacity int64
}

func (v *volume) used() int64 {
	v.t.Helper()
	entries, err := os.ReadDir(v.dir)
	require.NoError(v.t, err)
	var n int64
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		n += fi.Size()
	}
	return n
}

func (v *volume) write(f *os.File, p []byte) (int, error) {
	free := max(v.capacity-v.used(), 0)
	if int64(len(p)) <= free {
		return f.Write(p)
	}
	n, err := f.Write(p[:free])
	if err != nil {
		return n, err
	}
	return n, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

// traces returns the number and total size of the trace files in dir, and
// whether any temporary file is left.
func traces(t *testing.T, dir string) (count int, bytes int64, tmp bool) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			tmp = true
		}
		if !strings.HasSuffix(e.Name(), traceExt) {
			continue
		}
		fi, err := e.Info()
		require.NoError(t, err)
		count++
		bytes += fi.Size()
	}
	return count, bytes, tmp
}

func listed(infos []Info) []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.ID
	}
	return out
}

func snapshot(i, size int) *otelfr.Snapshot {
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	data := make([]byte, size)
	for j := range data {
		data[j] = 'a' + byte(j%26) // never '{': tells a trace from a description
	}
	return &otelfr.Snapshot{ID: fmt.Sprintf("SNAP%02d", i), Reason: "latency", Data: data, TakenAt: at}
}

// Regression: a full disk wedged the store forever. Retention ran only
// after a successful Save, so once the snapshots had filled their volume
// every Save failed with ENOSPC and nothing was ever removed.
func TestDirStoreFullDiskWedgesStore(t *testing.T) {
	t.Run("the oldest make room on a full volume", func(t *testing.T) {
		dir := t.TempDir()
		st, err := NewDirStore(dir)
		require.NoError(t, err)
		for i := range 4 {
			_, err := st.Save(t.Context(), snapshot(i, 1000))
			require.NoError(t, err)
		}
		v := &volume{t: t, dir: dir}
		v.capacity = v.used() // the store has filled its volume
		st.write = v.write

		for i := 4; i < 10; i++ {
			info, err := st.Save(t.Context(), snapshot(i, 1000))
			require.NoError(t, err, "Save %d on a full volume", i)
			assert.Equal(t, fmt.Sprintf("SNAP%02d", i), info.ID)
			list, err := st.List(t.Context())
			require.NoError(t, err)
			want := []string{info.ID}
			for j := i - 1; j > i-4; j-- {
				want = append(want, fmt.Sprintf("SNAP%02d", j))
			}
			assert.Equal(t, want, listed(list), "only the oldest was removed")
			_, _, tmp := traces(t, dir)
			assert.False(t, tmp, "no temporary file is left")
		}
	})
	t.Run("a snapshot larger than the volume fails once nothing is left", func(t *testing.T) {
		dir := t.TempDir()
		st, err := NewDirStore(dir)
		require.NoError(t, err)
		_, err = st.Save(t.Context(), snapshot(1, 1000))
		require.NoError(t, err)
		v := &volume{t: t, dir: dir, capacity: 1500}
		st.write = v.write

		_, err = st.Save(t.Context(), snapshot(2, 2000))
		require.ErrorIs(t, err, syscall.ENOSPC)
		_, _, tmp := traces(t, dir)
		assert.False(t, tmp, "no temporary file is left")
		_, _, err = st.Open(t.Context(), "SNAP02")
		require.ErrorIs(t, err, ErrNotFound)

		_, err = st.Save(t.Context(), snapshot(3, 1000))
		require.NoError(t, err, "the store still takes snapshots that fit")
	})
	t.Run("the cap holds while writing", func(t *testing.T) {
		const maxCount, maxBytes = 3, 2500
		dir := t.TempDir()
		st, err := NewDirStore(dir, WithMaxCount(maxCount), WithMaxTotalBytes(maxBytes))
		require.NoError(t, err)
		st.write = func(f *os.File, p []byte) (int, error) {
			if len(p) > 0 && p[0] != '{' { // the trace, before its rename
				count, bytes, _ := traces(t, dir)
				assert.LessOrEqual(t, count+1, maxCount, "snapshots while writing")
				assert.LessOrEqual(t, bytes+int64(len(p)), int64(maxBytes), "bytes while writing")
			}
			return f.Write(p)
		}
		for i := range 8 {
			_, err := st.Save(t.Context(), snapshot(i, 800))
			require.NoError(t, err)
		}
		list, err := st.List(t.Context())
		require.NoError(t, err)
		assert.Len(t, list, 3)
	})
}

// stream writes s's trace into the store through Create, in pieces of n
// bytes, and commits it with its SHA-256.
func stream(t *testing.T, st *DirStore, s *otelfr.Snapshot, n int) (Info, error) {
	t.Helper()
	return streamSum(t, st, s, n, hashData(s.Data))
}

// streamSum is stream committing with sum as the SHA-256 ("": none).
func streamSum(t *testing.T, st *DirStore, s *otelfr.Snapshot, n int, sum string) (Info, error) {
	t.Helper()
	w, err := st.Create(t.Context())
	require.NoError(t, err)
	for p := 0; p < len(s.Data); p += n {
		if _, err := w.Write(s.Data[p:min(p+n, len(s.Data))]); err != nil {
			w.Abort()
			return Info{}, err
		}
	}
	streamed := *s
	streamed.SHA256 = sum
	streamed.Data = nil
	return w.Commit(t.Context(), &streamed)
}

func TestDirStoreCreate(t *testing.T) {
	dir := t.TempDir()
	st, err := NewDirStore(dir, WithMaxCount(3))
	require.NoError(t, err)
	want := snapshot(1, 5000)
	info, err := stream(t, st, want, 777)
	require.NoError(t, err)
	saved, err := st.Save(t.Context(), snapshot(2, 5000))
	require.NoError(t, err)
	assert.Equal(t, saved.SHA256, info.SHA256, "the same trace, streamed or saved")
	assert.Equal(t, int64(5000), info.Size)

	r, in, err := st.Open(t.Context(), "SNAP01")
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.Equal(t, want.Data, got)
	assert.Equal(t, info.Path, in.Path)

	t.Run("Abort", func(t *testing.T) {
		w, err := st.Create(t.Context())
		require.NoError(t, err)
		_, err = w.Write([]byte("half a trace"))
		require.NoError(t, err)
		w.Abort()
		w.Abort()
		_, _, tmp := traces(t, dir)
		assert.False(t, tmp, "no temporary file is left")
		_, err = w.Commit(t.Context(), snapshot(3, 1))
		require.ErrorIs(t, err, os.ErrClosed)
	})
	t.Run("NoChecksum", func(t *testing.T) {
		// Committed without its SHA-256, recorded afterwards.
		w, err := st.Create(t.Context())
		require.NoError(t, err)
		_, err = w.Write([]byte("trace"))
		require.NoError(t, err)
		info, err := w.Commit(t.Context(), &otelfr.Snapshot{ID: "NOSUM"})
		require.NoError(t, err)
		assert.Empty(t, info.SHA256)
		sum := hashData([]byte("trace"))
		require.NoError(t, st.SetSHA256(t.Context(), "NOSUM", sum))
		require.NoError(t, st.SetSHA256(t.Context(), "NOSUM", sum), "the same sum again")
		require.ErrorIs(t, st.SetSHA256(t.Context(), "NOSUM", hashData(nil)), ErrChecksumMismatch)
		require.ErrorIs(t, st.SetSHA256(t.Context(), "NONE", sum), ErrNotFound)
		r, in, err := st.Open(t.Context(), "NOSUM")
		require.NoError(t, err)
		require.NoError(t, r.Close())
		assert.Equal(t, sum, in.SHA256)
		_, _, tmp := traces(t, dir)
		assert.False(t, tmp)
	})
	t.Run("Retention", func(t *testing.T) {
		for i := 3; i < 8; i++ {
			_, err := stream(t, st, snapshot(i, 100), 64)
			require.NoError(t, err)
		}
		list, err := st.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"SNAP07", "SNAP06", "SNAP05"}, listed(list))
	})
	t.Run("ReadOnly", func(t *testing.T) {
		ro, err := NewDirStore(dir, WithReadOnly())
		require.NoError(t, err)
		_, err = ro.Create(t.Context())
		require.ErrorIs(t, err, ErrReadOnly)
	})
}

// The full-volume regression above, for a snapshot streamed into the
// store: the write frees the oldest snapshots and goes on.
func TestDirStoreFullDiskWedgesStoreStreamed(t *testing.T) {
	dir := t.TempDir()
	st, err := NewDirStore(dir)
	require.NoError(t, err)
	for i := range 4 {
		_, err := st.Save(t.Context(), snapshot(i, 1000))
		require.NoError(t, err)
	}
	v := &volume{t: t, dir: dir}
	v.capacity = v.used()
	st.write = v.write
	for i := 4; i < 8; i++ {
		_, err := stream(t, st, snapshot(i, 1000), 300)
		require.NoError(t, err, "snapshot %d on a full volume", i)
	}
	list, err := st.List(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "SNAP07", list[0].ID)
	_, _, tmp := traces(t, dir)
	assert.False(t, tmp)

	// Larger than the volume: fails once nothing is left, and leaves no
	// temporary file.
	v.capacity = 1500
	_, err = stream(t, st, snapshot(9, 4000), 1000)
	require.ErrorIs(t, err, syscall.ENOSPC)
	_, _, tmp = traces(t, dir)
	assert.False(t, tmp)
}

// commitUnsummed streams s into the store and commits it without its
// SHA-256, as the exporter does into a Checksummer.
func commitUnsummed(t *testing.T, st *DirStore, s *otelfr.Snapshot) (Info, error) {
	t.Helper()
	return streamSum(t, st, s, len(s.Data), "")
}

// A snapshot committed without its SHA-256 is counted by retention when
// SetSHA256 records it, not at Commit: the caller that hashes it after it
// is stored bears retention's work, off the snapshot path.
func TestDirStoreRetentionWaitsForTheSum(t *testing.T) {
	dir := t.TempDir()
	st, err := NewDirStore(dir, WithMaxCount(2))
	require.NoError(t, err)
	for i := 1; i <= 2; i++ {
		_, err := st.Save(t.Context(), snapshot(i, 100))
		require.NoError(t, err)
	}
	s := snapshot(3, 100)
	_, err = commitUnsummed(t, st, s)
	require.NoError(t, err)
	list, err := st.List(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"SNAP03", "SNAP02", "SNAP01"}, listed(list), "nothing is removed before the sum")

	require.NoError(t, st.SetSHA256(t.Context(), "SNAP03", hashData(s.Data)))
	list, err = st.List(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"SNAP03", "SNAP02"}, listed(list))
	count, _, tmp := traces(t, dir)
	assert.Equal(t, 2, count, "the oldest trace goes with its description")
	assert.False(t, tmp)

	require.NoError(t, st.SetSHA256(t.Context(), "SNAP03", hashData(s.Data)), "the same sum again")
	list, err = st.List(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"SNAP03", "SNAP02"}, listed(list))
}

// An unsummed snapshot whose trace just fits the volume, and whose
// description does not: Commit removes the oldest snapshot to fit it.
func TestDirStoreFullDiskUnsummedDescription(t *testing.T) {
	dir := t.TempDir()
	st, err := NewDirStore(dir)
	require.NoError(t, err)
	for i := range 3 {
		_, err := st.Save(t.Context(), snapshot(i, 1000))
		require.NoError(t, err)
	}
	v := &volume{t: t, dir: dir}
	v.capacity = v.used() + 1000 // the trace, and not a byte more
	st.write = v.write
	info, err := commitUnsummed(t, st, snapshot(3, 1000))
	require.NoError(t, err)
	assert.Equal(t, "SNAP03", info.ID)
	list, err := st.List(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"SNAP03", "SNAP02", "SNAP01"}, listed(list), "the oldest made room for the description")
	_, _, tmp := traces(t, dir)
	assert.False(t, tmp)
}

// Snapshots committed without their sums, which never come (the caller
// does not hash them): a commit that finds the one before still uncounted
// makes room, so the store exceeds its limits by the newest at most.
func TestDirStoreRetentionWithoutSums(t *testing.T) {
	dir := t.TempDir()
	st, err := NewDirStore(dir, WithMaxCount(2))
	require.NoError(t, err)
	for i := 1; i <= 6; i++ {
		_, err := commitUnsummed(t, st, snapshot(i, 100))
		require.NoError(t, err)
		list, err := st.List(t.Context())
		require.NoError(t, err)
		assert.LessOrEqual(t, len(list), 3, "after snapshot %d: %v", i, listed(list))
	}
	list, err := st.List(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"SNAP06", "SNAP05"}, listed(list), "the sixth made room")
	count, _, _ := traces(t, dir)
	assert.Equal(t, 2, count)
}
