package snapstore

import (
	"fmt"
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
