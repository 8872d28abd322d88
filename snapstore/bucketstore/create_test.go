package bucketstore_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"

	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
)

// create streams snap's trace into s through Create, in two writes.
func create(t *testing.T, s *bucketstore.Store, snap *otelfr.Snapshot) (snapstore.Info, error) {
	t.Helper()
	w, err := s.Create(t.Context())
	require.NoError(t, err)
	half := len(snap.Data) / 2
	for _, p := range [][]byte{snap.Data[:half], snap.Data[half:]} {
		_, err := w.Write(p)
		require.NoError(t, err)
	}
	sum := sha256.Sum256(snap.Data)
	streamed := *snap
	streamed.Data, streamed.SHA256 = nil, hex.EncodeToString(sum[:])
	return w.Commit(t.Context(), &streamed)
}

func TestCreate(t *testing.T) {
	check := func(t *testing.T, s *bucketstore.Store) {
		snap := snapshot("SNAP1", t0)
		info, err := create(t, s, snap)
		require.NoError(t, err)
		assert.Equal(t, int64(len(snap.Data)), info.Size)
		saved, err := s.Save(t.Context(), snapshot("SNAP2", t0))
		require.NoError(t, err)
		assert.Len(t, saved.SHA256, 64)

		r, got, err := s.Open(t.Context(), "SNAP1")
		require.NoError(t, err)
		data, err := io.ReadAll(r)
		require.NoError(t, err)
		require.NoError(t, r.Close())
		assert.Equal(t, snap.Data, data)
		assert.Equal(t, info.SHA256, got.SHA256)

		_, err = create(t, s, snapshot("SNAP1", t0))
		require.ErrorIs(t, err, bucketstore.ErrExists)

		// Committed without its SHA-256, recorded afterwards.
		w, err := s.Create(t.Context())
		require.NoError(t, err)
		_, err = w.Write([]byte("trace"))
		require.NoError(t, err)
		info, err = w.Commit(t.Context(), &otelfr.Snapshot{ID: "NOSUM", TakenAt: t0})
		require.NoError(t, err)
		w.Abort() // a no-op after Commit
		sum := sha256.Sum256([]byte("trace"))
		hexSum := hex.EncodeToString(sum[:])
		if info.SHA256 != "" {
			assert.Equal(t, hexSum, info.SHA256, "hashed at Commit, where Commit uploads")
		}
		require.NoError(t, s.SetSHA256(t.Context(), "NOSUM", hexSum))
		require.NoError(t, s.SetSHA256(t.Context(), "NOSUM", hexSum), "the same sum again")
		other := sha256.Sum256(nil)
		require.ErrorIs(t, s.SetSHA256(t.Context(), "NOSUM", hex.EncodeToString(other[:])), snapstore.ErrChecksumMismatch)
		require.ErrorIs(t, s.SetSHA256(t.Context(), "NONE", hexSum), snapstore.ErrNotFound)
		r, got, err = s.Open(t.Context(), "NOSUM")
		require.NoError(t, err)
		require.NoError(t, r.Close())
		assert.Equal(t, hexSum, got.SHA256)
	}
	t.Run("Direct", func(t *testing.T) {
		forEachBucket(t, func(t *testing.T, s *bucketstore.Store, _ *blob.Bucket) { check(t, s) })
	})
	t.Run("Spool", func(t *testing.T) {
		f := newFaultBucket()
		// Uploads wait until check is done: an ID is refused while the
		// spool holds it, and an upload that finished first would have
		// taken SNAP1 out of the spool before check creates it again.
		f.set(hang)
		dir := t.TempDir()
		s := spooled(t, f, dir, 0)
		check(t, s)
		f.set(up)
		require.NoError(t, s.Shutdown(t.Context()))
		assert.ElementsMatch(t, []string{"NOSUM", "SNAP1", "SNAP2"}, inBucket(t, f), "uploaded from the spool")
		direct := bucketstore.New(f.bucket())
		defer direct.Close()
		r, got, oerr := direct.Open(t.Context(), "NOSUM")
		require.NoError(t, oerr)
		require.NoError(t, r.Close())
		assert.Len(t, got.SHA256, 64, "uploaded with the sum recorded after Commit")
		for _, name := range spoolFiles(t, dir) {
			assert.False(t, strings.HasPrefix(name, ".tmp-"), "left %s", name)
		}
		_, err := s.Create(t.Context())
		require.ErrorIs(t, err, bucketstore.ErrClosed)
	})
	t.Run("Abort", func(t *testing.T) {
		dir := t.TempDir()
		s := spooled(t, newFaultBucket(), dir, 0)
		w, err := s.Create(t.Context())
		require.NoError(t, err)
		_, err = w.Write([]byte("half"))
		require.NoError(t, err)
		w.Abort()
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			assert.False(t, strings.HasPrefix(e.Name(), ".tmp-"), "left %s", e.Name())
		}
	})
}
