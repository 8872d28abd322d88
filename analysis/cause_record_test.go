package analysis_test

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"runtime"
	rt "runtime/trace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// burn spins for d without yielding: the runtime preempts it after 10 ms
// only, so that a goroutine burning less runs to its end in one slice and
// the trace holds no stack of it.
//
//go:noinline
func burn(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

// scoreFeatures fans out n goroutines with sync.WaitGroup.Go, each
// burning each, and returns the WaitGroup.
//
//go:noinline
func scoreFeatures(n int, each time.Duration) *sync.WaitGroup {
	wg := &sync.WaitGroup{}
	for range n {
		wg.Go(func() { burn(each) })
	}
	return wg
}

// fanOutCause diagnoses a span that, on one P, fans out 24 goroutines
// burning each and then either works 30 ms itself, yielding (it is then
// mostly runnable) or waits for them (blocked, woken by a goroutine that was
// mostly waiting for a P), and returns its cause.
func fanOutCause(t *testing.T, each time.Duration, wait bool) string {
	t.Helper()
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	data, span := recording(t, func(context.Context) {
		wg := scoreFeatures(24, each)
		if wait {
			wg.Wait()
			return
		}
		// 30 ms of work in slices that yield: the goroutine waits behind
		// the fan-out whether or not the runtime preempts anyone.
		for range 1500 {
			burn(20 * time.Microsecond)
			runtime.Gosched()
		}
		wg.Wait()
	})
	d, err := analysis.Analyze(data, span)
	require.NoError(t, err)
	t.Logf("%s\n\tcause: %s", d.Verdict, d.Cause)
	return d.Cause
}

// TestCauseNamesHoldersByTheirOwnCode pins issue 17's grouping of CPU
// saturation: the goroutines that held the Ps are named by the program's
// function that started them, whether they ran to their end unseen (4 ms
// each, under the 10 ms time slice: no stack in the trace) or were
// preempted in their work (25 ms each), so that both land in one group;
// they used to be "sync.(*WaitGroup).Go.func1 running" and
// "analysis_test.burn running". A span that waits for them has the same
// root: the goroutine that woke it was mostly waiting for a P, so the root
// is who held the Ps, not that goroutine.
func TestCauseNamesHoldersByTheirOwnCode(t *testing.T) {
	const root = "root: analysis_test.scoreFeatures running"
	short := fanOutCause(t, 4*time.Millisecond, false)
	long := fanOutCause(t, 25*time.Millisecond, false)
	assert.Equal(t, "runnable in analysis_test.fanOutCause.func1; "+root, short)
	assert.Equal(t, short, long)
	waited := fanOutCause(t, 25*time.Millisecond, true)
	assert.Contains(t, waited, "analysis_test.fanOutCause")
	assert.Contains(t, waited, root)
}

// TestCauseOfAShortFailure pins that a failed span shorter than 10 ms is
// grouped by its error alone, whatever it did in its last microseconds.
func TestCauseOfAShortFailure(t *testing.T) {
	data, span := recording(t, func(context.Context) { burn(200 * time.Microsecond) })
	span.Error = "HTTP 503: warehouse database unavailable (retry 3)"
	d, err := analysis.Analyze(data, span)
	require.NoError(t, err)
	assert.Equal(t, "error: HTTP #: warehouse database unavailable (retry #)", d.Cause)

	data, span = recording(t, func(context.Context) { burn(15 * time.Millisecond) })
	span.Error = "HTTP 503"
	d, err = analysis.Analyze(data, span)
	require.NoError(t, err)
	// Where it ran is known when the runtime preempted it, which a 15 ms
	// slice need not be.
	assert.True(t, strings.HasPrefix(d.Cause, "error: HTTP #; running"), "a longer one keeps what it did: %q", d.Cause)
}

// TestCauseOfAStarvedDownstream pins the cause of a span that waits on a
// downstream service served by its own process while that process has no
// P to spare: the client's wait ends waiting on the network (the
// connection's readLoop), but the server's goroutine, which logs another
// span of the same trace, was runnable meanwhile, so the root is who held
// the Ps, not the network.
func TestCauseOfAStarvedDownstream(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server's span: another span of the caller's trace, logged
		// as otelfr logs spans.
		var tid trace.TraceID
		_, _ = hex.Decode(tid[:], []byte(r.Header.Get("X-Trace")))
		ctx, task := rt.NewTask(r.Context(), "POST /reserve")
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}})
		logSpan(ctx, "start", sc)
		_, _ = io.WriteString(w, "ok")
		logSpan(ctx, "end", sc)
		task.End()
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	call := func(ctx context.Context) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+l.Addr().String()+"/reserve", nil)
		require.NoError(t, err)
		req.Header.Set("X-Trace", trace.SpanContextFromContext(ctx).TraceID().String())
		resp, err := client.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	call(context.Background()) // a kept-alive connection, its server goroutine waiting

	data, span := recording(t, func(ctx context.Context) {
		wg := scoreFeatures(24, 10*time.Millisecond)
		call(ctx)
		wg.Wait()
	})
	d, err := analysis.Analyze(data, span)
	require.NoError(t, err)
	t.Logf("%s\n\tcause: %s", d.Verdict, d.Cause)
	assert.Contains(t, d.Cause, "root: analysis_test.scoreFeatures running")
}

// TestCauseLooksBackForHolders pins the CPU burst's neighbours: a span
// that starts after the burst's generation has ended waits for the P
// behind a fan-out started in that generation, whose goroutines run to
// their ends without a stack. Only their creation, in the generation
// before the span's, names them; parsing the span's generation alone
// named none of them and took the root from whoever else ran.
func TestCauseLooksBackForHolders(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	r := startRecorder(t, defaultRecorder)
	for attempt := 1; ; attempt++ {
		// Ending the generation waits for the trace reader, which waits
		// behind the fan-out for the one P: short goroutines keep each
		// turn short, and many keep some queued until the span starts.
		wg := scoreFeatures(800, 500*time.Microsecond)
		r.advance()
		span := r.span(func(context.Context) {
			for range 2000 {
				burn(20 * time.Microsecond)
				runtime.Gosched()
			}
		})
		wg.Wait()
		data := r.snapshot()

		d, err := analysis.Analyze(data, span)
		require.NoError(t, err)
		t.Logf("%s\n\tcause: %s", d.Verdict, d.Cause)
		if state, _ := d.Goroutines[0].Buckets.Dominant(); state != analysis.StateRunnable && attempt < 3 {
			// The fan-out was over before the span began (the machine
			// was slower than the trace reader needed): set it up again.
			t.Logf("attempt %d: the span did not wait for the P (%v); again", attempt, d.Goroutines[0].Buckets)
			continue
		}
		assert.Equal(t, "runnable in analysis_test.TestCauseLooksBackForHolders.func1; root: analysis_test.scoreFeatures running", d.Cause)
		assert.GreaterOrEqual(t, d.Parsed.Generations, 2, "the generation of the fan-out's creation is read")
		require.NotEmpty(t, d.RanWhileRunnable)
		assert.NotContains(t, d.RanWhileRunnable[0].Func, "goroutine ", "the goroutines that held the P are named")
		return
	}
}
