package analysis_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
// burning each and then either burns 30 ms itself (it is then mostly
// runnable) or waits for them (blocked, woken by a goroutine that was
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
		burn(30 * time.Millisecond)
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
	assert.Equal(t, "runnable in analysis_test.burn; "+root, short)
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
	assert.Equal(t, "error: HTTP #; running in analysis_test.burn", d.Cause, "a longer one keeps what it did")
}
