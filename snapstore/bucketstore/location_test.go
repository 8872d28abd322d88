package bucketstore_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
)

// TestOpenStore checks that a location without a scheme is a directory,
// one with a scheme a spooled bucket, and that bad locations fail.
func TestOpenStore(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache) // os.UserCacheDir on Linux

	t.Run("directory", func(t *testing.T) {
		for _, dir := range []string{
			filepath.Join(t.TempDir(), "snaps"),
			filepath.Join(t.TempDir(), "a:b"), // a colon without "://" is a path
		} {
			s, shutdown, err := bucketstore.OpenStore(t.Context(), dir)
			require.NoError(t, err, dir)
			require.IsType(t, &snapstore.DirStore{}, s)
			assert.Equal(t, dir, s.(*snapstore.DirStore).Dir())
			assert.DirExists(t, dir)
			assert.NoError(t, shutdown(t.Context()))
		}
	})

	t.Run("bucket", func(t *testing.T) {
		ctx := t.Context()
		u := fileURL(t.TempDir())
		s, shutdown, err := bucketstore.OpenStore(ctx, u)
		require.NoError(t, err)
		require.IsType(t, &bucketstore.Store{}, s)
		_, err = s.Save(ctx, snapshot("SPOOLED", t0))
		require.NoError(t, err)
		spools, err := os.ReadDir(filepath.Join(cache, "otelfr", "spool"))
		require.NoError(t, err)
		assert.Len(t, spools, 1, "the spool is under the user's cache directory")
		require.NoError(t, shutdown(ctx), "shutdown drains the spool")

		b, err := bucketstore.Open(ctx, u)
		require.NoError(t, err)
		defer b.Close()
		list, err := b.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1, "the snapshot reached the bucket")
		assert.Equal(t, "SPOOLED", list[0].ID)
	})

	t.Run("explicit spool", func(t *testing.T) {
		spool := filepath.Join(t.TempDir(), "spool")
		_, shutdown, err := bucketstore.OpenStore(t.Context(), "mem://", bucketstore.WithSpool(spool, 0))
		require.NoError(t, err)
		assert.DirExists(t, spool, "WithSpool wins over the default spool")
		assert.NoError(t, shutdown(t.Context()))
	})

	for _, tc := range []struct{ name, location, err string }{
		{"empty", "", bucketstore.ErrNoLocation.Error()},
		{"bad URL", "s3://bucket%zz", "invalid URL escape"},
		{"driver not linked", "nosuch://bucket", "nosuch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := bucketstore.OpenStore(t.Context(), tc.location)
			assert.ErrorContains(t, err, tc.err)
		})
	}
}

// TestReplicasShareASpool pins "replicas on one host share a spool": two
// processes opening the same bucket URL got the same default spool
// directory, where each removed the other's temporary files at start and
// uploaded, or dropped, the other's snapshots. Each now takes a spool of
// its own, and a store opened after one closed takes the spool it left.
func TestReplicasShareASpool(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	ctx := t.Context()
	u := fileURL(t.TempDir())

	a, shutdownA, err := bucketstore.OpenStore(ctx, u)
	require.NoError(t, err)
	b, shutdownB, err := bucketstore.OpenStore(ctx, u)
	require.NoError(t, err)
	spools, err := os.ReadDir(filepath.Join(cache, "otelfr", "spool"))
	require.NoError(t, err)
	assert.Len(t, spools, 2, "one spool each")

	_, err = a.Save(ctx, snapshot("FROMA", t0))
	require.NoError(t, err)
	_, err = b.Save(ctx, snapshot("FROMB", t0.Add(time.Second)))
	require.NoError(t, err)
	require.NoError(t, shutdownA(ctx))
	require.NoError(t, shutdownB(ctx))

	direct, err := bucketstore.Open(ctx, u)
	require.NoError(t, err)
	defer direct.Close()
	list, err := direct.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"FROMB", "FROMA"}, ids(list), "each replica uploaded its own")

	// Closed, the spools are free again: the next store takes the first.
	c, shutdownC, err := bucketstore.OpenStore(ctx, u)
	require.NoError(t, err)
	require.NoError(t, shutdownC(ctx))
	_ = c
	spools, err = os.ReadDir(filepath.Join(cache, "otelfr", "spool"))
	require.NoError(t, err)
	assert.Len(t, spools, 2, "no third spool once the first is free")

	t.Run("explicit spool in use", func(t *testing.T) {
		dir := t.TempDir()
		s, err := bucketstore.Open(ctx, "mem://", bucketstore.WithSpool(dir, 0))
		require.NoError(t, err)
		defer s.Close()
		_, err = bucketstore.Open(ctx, "mem://", bucketstore.WithSpool(dir, 0))
		assert.ErrorIs(t, err, bucketstore.ErrSpoolBusy)
	})
}
