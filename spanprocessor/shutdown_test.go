package spanprocessor_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// gate is a wrapped processor whose OnEnd blocks, for the spans the worker
// forwards (linked or skipped), until it is opened. It counts what reaches
// it, and remembers how much time its Shutdown was given.
type gate struct {
	countingProcessor
	closed   bool
	open     chan struct{}
	blocked  atomic.Int64
	shutdown chan time.Duration // the time left before the deadline of Shutdown's ctx
}

func newGate(closed bool) *gate {
	return &gate{closed: closed, open: make(chan struct{}), shutdown: make(chan time.Duration, 1)}
}

func (g *gate) OnEnd(s sdktrace.ReadOnlySpan) {
	if _, fromWorker := attr(s, otelfr.SnapshotReasonKey); fromWorker && g.closed {
		g.blocked.Add(1)
		<-g.open
	}
	g.countingProcessor.OnEnd(s)
}

func (g *gate) Shutdown(ctx context.Context) error {
	left := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	g.shutdown <- left
	return nil
}

// shutdownRig starts a recorder (stopped at the end of the test) and a
// store, and returns what goleak should ignore: the goroutines before the
// processor under test starts.
func shutdownRig(t *testing.T) (*otelfr.Recorder, *snapstore.DirStore, goleak.Option) {
	t.Helper()
	rec, err := otelfr.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = rec.Stop(context.Background()) })
	before := goleak.IgnoreCurrent()
	store, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	return rec, store, before
}

func total(counts map[string]int64) (n int64) {
	for _, c := range counts {
		n += c
	}
	return n
}

func errorSpan(name string) sdktrace.ReadOnlySpan {
	end := time.Now()
	return tracetest.SpanStub{
		Name: name, StartTime: end.Add(-time.Millisecond), EndTime: end,
		Status: sdktrace.Status{Code: codes.Error},
	}.Snapshot()
}

// An OnEnd that passed the stopped check while the worker made its final
// drain put its span in the queue after the worker had gone: the span was
// neither forwarded nor counted, and Shutdown returned nil (11 of 1,200
// shutdowns, 103 of 200 with a 200 µs predicate). And Shutdown waited for
// a blocked wrapped processor far past its deadline (16 s for 200 ms).
//
// Each round races OnEnd calls from four goroutines against Shutdown, and
// checks that every span handed to OnEnd reached the wrapped processor
// exactly once, or was counted as abandoned or dropped after shutdown.
func TestShutdownLosesRacingAnomalies(t *testing.T) {
	rec, store, before := shutdownRig(t)

	const rounds, senders, perSender = 2000, 4, 25
	slowPredicate := func(sdktrace.ReadOnlySpan) (string, bool) {
		for start := time.Now(); time.Since(start) < 200*time.Microsecond; {
		}
		return "", false
	}
	var lost, late, slowest, gaveUp int64 // slowest: the latest return past the deadline, in µs
	for round := range rounds {
		// Rounds 0-1499: a plain wrapped processor; 1500-1799: a 200 µs
		// predicate widens the window between the check and the send;
		// 1800-1999: the wrapped processor blocks on the worker's spans.
		blocking := round >= 1800
		opts := []spanprocessor.Option{spanprocessor.WithErrorTrigger(true)}
		if round >= 1500 && !blocking {
			opts = append(opts, spanprocessor.WithPredicate(slowPredicate))
		}
		next := newGate(blocking)
		proc := spanprocessor.New(next, rec, exporter.New(store, nil), opts...)

		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := range senders {
			wg.Go(func() {
				<-start
				for i := range perSender {
					if i%5 == 0 {
						proc.OnEnd(errorSpan(fmt.Sprint("anomalous", g, i)))
					} else {
						proc.OnEnd(tracetest.SpanStub{Name: "normal"}.Snapshot())
					}
				}
			})
		}
		close(start)
		timeout := time.Second
		if blocking {
			timeout = 20 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		deadline, _ := ctx.Deadline()
		switch {
		case blocking:
			time.Sleep(time.Duration(round%4) * 500 * time.Microsecond) // let some reach the worker
		case round%2 == 0:
			time.Sleep(time.Duration(round%7) * 10 * time.Microsecond)
		}
		err := proc.Shutdown(ctx)
		over := time.Since(deadline)
		cancel()
		if over > 50*time.Millisecond {
			late++
		}
		slowest = max(slowest, over.Microseconds())
		require.Less(t, over, time.Second, "round %d: Shutdown returns by its deadline (with slack for a loaded machine)", round)
		if next.blocked.Load() == 0 {
			require.NoError(t, err, "round %d", round)
		} else {
			require.ErrorIs(t, err, context.DeadlineExceeded, "round %d: a Shutdown that gave up says so", round)
			gaveUp++
		}
		close(next.open)
		wg.Wait()

		handed := int64(senders * perSender)
		accounted := func() int64 {
			s := proc.Stats()
			return next.total.Load() + s.Abandoned + s.DroppedAfterShutdown
		}
		if blocking {
			// The spans that were blocked reach the wrapped processor now.
			require.Eventually(t, func() bool { return accounted() >= handed }, 5*time.Second, time.Millisecond,
				"round %d", round)
		}
		s := proc.Stats()
		lost += handed - accounted()
		require.Equal(t, s.Anomalies, s.Linked+total(s.Skipped)+s.Abandoned,
			"round %d: every anomaly is linked, skipped or abandoned, once: %+v", round, s)
	}
	t.Logf("%d rounds (%d gave up on a blocked worker): %d spans lost; %d Shutdown calls returned over 50ms past their deadline; the latest %dµs past it",
		rounds, gaveUp, lost, late, slowest)
	assert.Zero(t, lost, "spans neither forwarded nor counted")
	goleak.VerifyNone(t, before)
}

// Shutdown waited for a wrapped processor blocked in OnEnd for as long as
// it blocked, 16 s for a 200 ms ctx, and then handed the wrapped
// processor's Shutdown an expired ctx.
func TestShutdownIgnoresItsDeadline(t *testing.T) {
	rec, store, before := shutdownRig(t)
	next := newGate(true)
	proc := spanprocessor.New(next, rec, exporter.New(store, nil), spanprocessor.WithCoalesceWindow(0))
	for i := range 3 {
		proc.OnEnd(errorSpan(fmt.Sprint("failed", i)))
	}
	require.Eventually(t, func() bool { return next.blocked.Load() == 1 }, 5*time.Second, time.Millisecond,
		"the worker is stuck forwarding the first span")

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := proc.Shutdown(ctx)
	took := time.Since(start)
	t.Logf("Shutdown(200ms) returned after %v", took)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, took, time.Second, "returns by the deadline (with slack for a loaded machine)")
	left := <-next.shutdown
	assert.Greater(t, left, 25*time.Millisecond, "the wrapped processor's Shutdown gets the time that remains")
	s := proc.Stats()
	assert.Equal(t, int64(3), s.Anomalies)
	assert.Equal(t, int64(2), s.Abandoned, "the two spans behind the blocked one")
	assert.Equal(t, int64(1), s.Linked+total(s.Skipped), "the blocked one was handed over: %+v", s)

	close(next.open)
	require.Eventually(t, func() bool { return next.total.Load() == 1 }, 5*time.Second, time.Millisecond)
	goleak.VerifyNone(t, before)
	assert.Equal(t, int64(1), next.total.Load(), "an abandoned span is never forwarded later")
}

// blockingExporter never answers until released or its ctx ends.
type blockingExporter struct{ release chan struct{} }

func (b blockingExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return ctx.Err()
}
func (blockingExporter) Shutdown(context.Context) error { return nil }

// Over a BatchSpanProcessor WithBlocking() whose exporter hangs, the
// worker blocks in the batch processor's OnEnd, and Shutdown took 69–72 s
// for a 200 ms ctx.
func TestShutdownIgnoresItsDeadlineOverBlockingBatchProcessor(t *testing.T) {
	rec, store, before := shutdownRig(t)
	hang := blockingExporter{release: make(chan struct{})}
	bsp := sdktrace.NewBatchSpanProcessor(hang, sdktrace.WithBlocking(), sdktrace.WithMaxQueueSize(1),
		sdktrace.WithMaxExportBatchSize(1), sdktrace.WithBatchTimeout(time.Millisecond))
	proc := spanprocessor.New(bsp, rec, exporter.New(store, nil), spanprocessor.WithCoalesceWindow(0))
	for i := range 8 {
		proc.OnEnd(errorSpan(fmt.Sprint("failed", i)))
	}
	time.Sleep(50 * time.Millisecond) // the batch processor's queue fills

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := proc.Shutdown(ctx)
	took := time.Since(start)
	t.Logf("Shutdown(200ms) returned after %v: %v", took, err)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, took, time.Second, "returns by the deadline (with slack for a loaded machine)")
	s := proc.Stats()
	assert.Equal(t, s.Anomalies, s.Linked+total(s.Skipped)+s.Abandoned, "%+v", s)
	assert.Positive(t, s.Abandoned)

	close(hang.release)
	goleak.VerifyNone(t, before)
}

// Shutdown returns at once, with ctx's error, for a ctx already ended, and
// still shuts the wrapped processor down.
func TestShutdownWithEndedContext(t *testing.T) {
	p := newPipeline(t, nil, spanprocessor.WithLatencyThreshold(10*time.Millisecond),
		spanprocessor.WithCoalesceWindow(time.Hour))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p.span("slow", 20*time.Millisecond)
	err := p.proc.Shutdown(ctx)
	require.ErrorIs(t, err, context.Canceled)
	s := p.proc.Stats()
	assert.Equal(t, s.Anomalies, s.Linked+total(s.Skipped)+s.Abandoned, "%+v", s)
	require.Eventually(t, func() bool {
		p.next.mu.Lock()
		defer p.next.mu.Unlock()
		return p.next.shutdowns == 1
	}, 5*time.Second, time.Millisecond)
	assert.Empty(t, handled.Take())
}
