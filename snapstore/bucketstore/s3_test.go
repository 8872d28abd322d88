package bucketstore_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "gocloud.dev/blob/s3blob"

	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
)

// TestRealS3 runs the store against a real S3-compatible server, SeaweedFS
// started as a process, through the s3:// URL a user writes: the
// conditional write that keeps traces immutable, listing newest first,
// metadata rewrites, a 16 MiB trace, and data surviving a server restart.
func TestRealS3(t *testing.T) {
	srv := startS3(t)
	ctx := t.Context()
	s, err := bucketstore.Open(ctx, srv.URL())
	require.NoError(t, err)
	defer func() { assert.NoError(t, s.Close()) }()

	big := snapshot("BIG", t0.Add(time.Hour))
	big.Data = bytes.Repeat([]byte("otelfr "), 16<<20/7)
	start := time.Now()
	saved, err := s.Save(ctx, big)
	require.NoError(t, err)
	t.Logf("saved a %d MiB snapshot in %v", saved.Size>>20, time.Since(start))
	for i, id := range []string{"OLD", "MID"} {
		_, err := s.Save(ctx, snapshot(id, t0.Add(time.Duration(i)*time.Minute)))
		require.NoError(t, err)
	}
	_, err = s.Save(ctx, snapshot("OLD", t0.Add(2*time.Hour)))
	require.ErrorIs(t, err, bucketstore.ErrExists, "a stored trace is never replaced")

	require.NoError(t, s.AddSpans(ctx, "MID", []snapstore.SpanRef{span("a")}))
	require.NoError(t, s.AddSpans(ctx, "MID", []snapstore.SpanRef{span("b")}))

	check := func(when string) {
		list, err := s.List(ctx)
		require.NoError(t, err, when)
		var ids []string
		for _, in := range list {
			ids = append(ids, in.ID)
		}
		assert.Equal(t, []string{"BIG", "MID", "OLD"}, ids, "newest first, %s", when)
		m, err := s.Meta(ctx, "MID")
		require.NoError(t, err, when)
		assert.Equal(t, []string{"a", "b"}, spanNames(m.Spans), when)
		r, _, err := s.Open(ctx, "BIG")
		require.NoError(t, err, when)
		data, err := io.ReadAll(r)
		require.NoError(t, err, when)
		require.NoError(t, r.Close())
		assert.True(t, bytes.Equal(big.Data, data), "the 16 MiB trace reads back whole, %s", when)
		_, _, err = s.Open(ctx, "NOPE")
		assert.ErrorIs(t, err, snapstore.ErrNotFound, when)
	}
	check("after writing")
	srv.Stop()
	srv.Start()
	check("after the server restarted")
}

// startS3 starts a SeaweedFS S3 server for tb (see testutil.StartS3: it
// skips tb when the server's binary is not configured, and fails it in
// CI), with the AWS_* variables that sign for it set until tb ends.
func startS3(tb testing.TB) *testutil.S3Server {
	tb.Helper()
	srv := testutil.StartS3(tb)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		tb.Setenv(k, v)
	}
	return srv
}
