package main

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/internal/otlptest"
	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
)

// TestExampleBucketStore runs the example with its store a bucket URL: by
// the time run returns, the store has been shut down after tracing, so
// that the snapshots of the last lookups are in the bucket, not left in
// the spool, each with the example's resource.
func TestExampleBucketStore(t *testing.T) {
	recv := otlptest.NewReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+recv.Endpoint())
	t.Setenv(envProtocol, "grpc")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=grpc-1")
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the spool's parent
	logs := captureLog(t)
	bucket := (&url.URL{Scheme: "file", Path: t.TempDir()}).String()

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	require.NoError(t, run(ctx, config{
		addr: "127.0.0.1:0", snapAddr: testutil.FreeAddr(t), store: bucket,
		every: 700 * time.Millisecond, rounds: 1,
	}))
	assert.Contains(t, logs.String(), "snapshots in "+bucket)

	store, err := bucketstore.Open(t.Context(), bucket)
	require.NoError(t, err)
	defer store.Close()
	infos, err := store.List(t.Context())
	require.NoError(t, err)
	// The slow lookup's and the failing one's.
	require.Len(t, infos, 2, "both snapshots are in the bucket once run returns")
	for _, info := range infos {
		assert.False(t, info.Pending)
		assert.Equal(t, "grpc-example", info.Resource.ServiceName, "%s", info.ID)
		assert.Equal(t, "grpc-1", info.Resource.ServiceInstanceID, "%s", info.ID)
	}
}
