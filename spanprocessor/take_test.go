package spanprocessor_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// gatedStore is a DirStore whose streamed snapshots wait at Commit until
// the gate opens.
type gatedStore struct {
	*snapstore.DirStore
	creates atomic.Int32
	entered chan struct{} // closed at the first Commit
	gate    chan struct{}
	once    sync.Once
}

func (g *gatedStore) Create(ctx context.Context) (snapstore.SnapshotWriter, error) {
	g.creates.Add(1)
	w, err := g.DirStore.Create(ctx)
	return &gatedWriter{SnapshotWriter: w, g: g}, err
}

type gatedWriter struct {
	snapstore.SnapshotWriter
	g *gatedStore
}

func (w *gatedWriter) Commit(ctx context.Context, s *otelfr.Snapshot) (snapstore.Info, error) {
	w.g.once.Do(func() { close(w.g.entered) })
	<-w.g.gate
	return w.SnapshotWriter.Commit(ctx, s)
}

// Regression: the worker and Processor.Snapshot shared the recorder's one
// snapshot, and then each saved it, so a store that refuses a second save
// of an ID (bucketstore: ErrExists) failed one of them. Now they share the
// take: one snapshot, streamed and stored once.
func TestConcurrentSnapshotsStoredOnce(t *testing.T) {
	rec, err := otelfr.Start(otelfr.WithMinAge(time.Second), otelfr.WithMinInterval(time.Hour))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rec.Stop(context.Background()) })
	dir, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	st := &gatedStore{DirStore: dir, entered: make(chan struct{}), gate: make(chan struct{})}
	proc := spanprocessor.New(newRecordingProcessor(), rec, exporter.New(st, tracetest.NewNoopExporter()))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	first := make(chan snapstore.Info, 1)
	go func() {
		info, err := proc.Snapshot(context.Background(), "first")
		assert.NoError(t, err)
		first <- info
	}()
	<-st.entered
	const n = 4
	infos := make([]snapstore.Info, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { infos[i], errs[i] = proc.Snapshot(context.Background(), "joining") })
	}
	time.Sleep(20 * time.Millisecond) // let them reach the take; a late one is rate limited
	close(st.gate)
	wg.Wait()
	want := <-first
	for i := range n {
		if errs[i] != nil {
			require.ErrorIs(t, errs[i], otelfr.ErrRateLimited, "a call that came after the take")
			continue
		}
		assert.Equal(t, want.ID, infos[i].ID, "shared the take")
	}
	assert.Equal(t, int32(1), st.creates.Load(), "one snapshot stored")
	assert.Equal(t, int64(1), proc.Stats().Snapshots)
}
