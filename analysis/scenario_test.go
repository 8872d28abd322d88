package analysis_test

import (
	"context"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// The scenarios below each slow a span down for one known cause, for about
// scenarioWait, and check that the diagnosis names that cause as the main
// goroutine's dominant bucket, with its duration within 10% of what the
// test measured around the cause itself.
const scenarioWait = 200 * time.Millisecond

// outcome is what a scenario leaves for the checks.
type outcome struct {
	data []byte
	span analysis.Span
	want analysis.State
	// wantDur is the expected time in want, measured by the scenario,
	// within 10%; zero when nothing outside the trace measures it (see
	// scenarioAlloc).
	wantDur time.Duration
	check   func(t *testing.T, d *analysis.Diagnosis)
}

func TestScenarios(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T) outcome
	}{
		{"sleep", scenarioSleep},
		{"mutex held by another goroutine", scenarioMutex},
		{"channel wait on a worker", scenarioChannel},
		{"child span on another goroutine", scenarioSubtask},
		{"CPU-bound", scenarioBusy},
		{"CPU saturation", scenarioCPU},
		{"heavy allocation", scenarioAlloc},
		{"blocking syscall", scenarioSyscall},
		{"network read", scenarioNetwork},
		{"span processor without task", scenarioNoTask},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.run(t)
			d, err := analysis.Analyze(o.data, o.span)
			require.NoError(t, err)
			t.Logf("verdict: %s", d.Verdict)

			assert.Equal(t, analysis.StatusComplete, d.Status)
			require.NotEmpty(t, d.Goroutines)
			main := d.Goroutines[0]
			assert.Equal(t, analysis.RoleMain, main.Role)
			assert.Equal(t, d.MainGoroutine, main.ID)
			spanDur := o.span.End.Sub(o.span.Start)
			assert.InDelta(t, spanDur, main.Time, 0.01*float64(spanDur),
				"the main goroutine's buckets add up to the span's duration")
			for _, g := range d.Goroutines {
				assert.Equal(t, g.Time, g.Buckets.Total(), "goroutine %d", g.ID)
				assert.LessOrEqual(t, g.Time, d.Duration, "goroutine %d", g.ID)
			}

			state, dur := main.Buckets.Dominant()
			assert.Equal(t, o.want, state, "dominant bucket; buckets %v", main.Buckets)
			if o.wantDur != 0 {
				assert.InDelta(t, o.wantDur, dur, 0.1*float64(o.wantDur), "time in %v", o.want)
			}
			assert.Contains(t, d.Verdict, "% of ")
			if o.check != nil {
				o.check(t, d)
			}
		})
	}
}

func scenarioSleep(t *testing.T) outcome {
	var slept time.Duration
	data, span := recording(t, func(ctx context.Context) {
		slept = timed(func() { time.Sleep(scenarioWait) })
	})
	return outcome{data: data, span: span, want: analysis.StateBlockedSleep, wantDur: slept,
		check: func(t *testing.T, d *analysis.Diagnosis) {
			assert.Contains(t, d.Verdict, "sleeping in analysis_test.scenarioSleep")
			require.NotEmpty(t, d.Episodes)
			assert.Equal(t, analysis.StateBlockedSleep, d.Episodes[0].State)
			assert.Nil(t, d.Episodes[0].Waker, "a timer, not a goroutine, ends a sleep")
		}}
}

// cache is a mutex-protected cache whose refresh holds the lock for long.
type cache struct {
	mu  sync.Mutex
	val int
}

//go:noinline
func (c *cache) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.val
}

//go:noinline
func (c *cache) refresh(locked chan<- int64, hold time.Duration) {
	c.mu.Lock()
	locked <- goid()
	time.Sleep(hold)
	c.val++
	c.mu.Unlock()
}

func scenarioMutex(t *testing.T) outcome {
	var (
		c       cache
		locked  = make(chan int64)
		done    = make(chan struct{})
		holder  int64
		blocked time.Duration
	)
	r := startRecorder(t, defaultRecorder)
	// The holder exists before the span: it is found as the waker, not as
	// a goroutine of the span.
	go func() {
		defer close(done)
		c.refresh(locked, scenarioWait)
	}()
	holder = <-locked
	span := r.span(func(ctx context.Context) {
		blocked = timed(func() { c.get() })
	})
	data := r.snapshot()
	<-done
	return outcome{data: data, span: span, want: analysis.StateBlockedMutex, wantDur: blocked,
		check: func(t *testing.T, d *analysis.Diagnosis) {
			assert.Contains(t, d.Verdict, "blocked on sync.Mutex in analysis_test.(*cache).get")
			assert.Contains(t, d.Verdict, "released by goroutine "+itoa(holder)+" in analysis_test.(*cache).refresh")
			g := goroutineByID(d, holder)
			require.NotNil(t, g, "the holder is in the diagnosis")
			assert.Equal(t, analysis.RoleWaker, g.Role)

			require.NotEmpty(t, d.Episodes)
			ep := d.Episodes[0]
			assert.Equal(t, analysis.StateBlockedMutex, ep.State)
			assert.Equal(t, "sync", ep.Reason)
			assert.Equal(t, d.MainGoroutine, ep.Goroutine)
			assert.True(t, hasFunc(ep.Stack, "(*cache).get"), "blocked stack %v", ep.Stack)
			require.NotNil(t, ep.Waker)
			assert.Equal(t, holder, ep.Waker.Goroutine)
			assert.True(t, hasFunc(ep.Waker.Stack, "(*cache).refresh"), "waker stack %v", ep.Waker.Stack)
		}}
}

// spin keeps a CPU busy for d and returns how long it ran.
//
//go:noinline
func spin(d time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < d {
		for i := 0; i < 1000; i++ {
		}
	}
	return time.Since(start)
}

//go:noinline
func worker(results chan<- time.Duration, ids chan<- int64) {
	ids <- goid()
	results <- spin(scenarioWait)
}

func scenarioChannel(t *testing.T) outcome {
	var (
		waited time.Duration
		worked time.Duration
		wid    int64
	)
	data, span := recording(t, func(ctx context.Context) {
		results := make(chan time.Duration)
		ids := make(chan int64, 1)
		go worker(results, ids)
		waited = timed(func() { worked = <-results })
		wid = <-ids
	})
	return outcome{data: data, span: span, want: analysis.StateBlockedChan, wantDur: waited,
		check: func(t *testing.T, d *analysis.Diagnosis) {
			assert.Contains(t, d.Verdict, "blocked on a channel receive in analysis_test.scenarioChannel")
			assert.Contains(t, d.Verdict, "woken by goroutine "+itoa(wid)+" in analysis_test.worker, which was mostly running")
			w := goroutineByID(d, wid)
			require.NotNil(t, w, "the worker is in the diagnosis")
			assert.Equal(t, analysis.RoleChild, w.Role)
			assert.Equal(t, "github.com/otelfr/otel-flightrecorder/analysis_test.worker", w.Entry)
			assert.InDelta(t, worked, w.Buckets[analysis.StateRunning]+w.Buckets[analysis.StateRunnable], 0.1*float64(worked),
				"the worker's time on and waiting for a CPU; buckets %v", w.Buckets)
			assert.InDelta(t, worked, w.Buckets[analysis.StateRunning], 0.1*float64(worked), "the worker's running time")
		}}
}

func scenarioSubtask(t *testing.T) outcome {
	var (
		waited time.Duration
		wid    int64
		jobs   = make(chan context.Context)
		done   = make(chan struct{})
		ids    = make(chan int64, 1)
	)
	r := startRecorder(t, defaultRecorder)
	tracer := r.tp.Tracer("analysis_test")
	// A long-lived worker goroutine serves the span in a child span: the
	// SDK gives it a task whose parent is the span's.
	go func() {
		ids <- goid()
		for ctx := range jobs {
			_, child := tracer.Start(ctx, "child")
			time.Sleep(scenarioWait)
			child.End()
			done <- struct{}{}
		}
	}()
	wid = <-ids
	span := r.span(func(ctx context.Context) {
		jobs <- ctx
		waited = timed(func() { <-done })
	})
	data := r.snapshot()
	close(jobs)
	return outcome{data: data, span: span, want: analysis.StateBlockedChan, wantDur: waited,
		check: func(t *testing.T, d *analysis.Diagnosis) {
			w := goroutineByID(d, wid)
			require.NotNil(t, w, "the child span's goroutine is in the diagnosis")
			assert.Equal(t, analysis.RoleTask, w.Role)
			assert.InDelta(t, waited, w.Buckets[analysis.StateBlockedSleep], 0.1*float64(waited))
			assert.Contains(t, d.Verdict, "woken by goroutine "+itoa(wid)+" in analysis_test.scenarioSubtask.func1, which was mostly sleeping")
		}}
}

func scenarioBusy(t *testing.T) outcome {
	var ran time.Duration
	data, span := recording(t, func(ctx context.Context) { ran = spin(scenarioWait) })
	return outcome{data: data, span: span, want: analysis.StateRunning, wantDur: ran,
		check: func(t *testing.T, d *analysis.Diagnosis) {
			assert.Regexp(t, `^\d+% of \d+ ms running`, d.Verdict)
			assert.Empty(t, d.Episodes)
		}}
}

// yieldingSpin spins for d in slices of about 20 µs, yielding the P after each.
//
//go:noinline
func yieldingSpin(d time.Duration, stop *atomic.Bool) {
	start := time.Now()
	for time.Since(start) < d && (stop == nil || !stop.Load()) {
		for t := time.Now(); time.Since(t) < 20*time.Microsecond; {
		}
		runtime.Gosched()
	}
}

func scenarioCPU(t *testing.T) outcome {
	// One P, and nine goroutines besides the span's that all want it. They
	// all yield it every 20 µs, so the scheduler's round robin is fine
	// grained and fair: the span's goroutine is runnable 9/10 of the time.
	// (Left to preemption, the slices would be 10 ms long, and the span's
	// share a matter of one slice more or less: 84% to 99% runnable.)
	const spinners = 9
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	var (
		stop atomic.Bool
		wg   sync.WaitGroup
	)
	for range spinners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			yieldingSpin(time.Hour, &stop)
		}()
	}
	data, span := recording(t, func(ctx context.Context) { yieldingSpin(scenarioWait, nil) })
	stop.Store(true)
	wg.Wait()
	dur := span.End.Sub(span.Start)
	return outcome{data: data, span: span, want: analysis.StateRunnable, wantDur: dur * spinners / (spinners + 1),
		check: func(t *testing.T, d *analysis.Diagnosis) {
			assert.Equal(t, 1, d.GOMAXPROCS)
			assert.Contains(t, d.Verdict, "runnable, waiting for a P in analysis_test.yieldingSpin (GOMAXPROCS=1); 9 goroutines in analysis_test.yieldingSpin ran ")
			require.NotEmpty(t, d.RanWhileRunnable)
			assert.Equal(t, spinners, d.RanWhileRunnable[0].Goroutines, "the spinners held the P")
		}}
}

type node struct {
	next *node
	//lint:ignore U1000 makes each node a larger object for the GC to mark
	pad [2]*node
}

var allocSink [][]byte

func readGCCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func scenarioAlloc(t *testing.T) outcome {
	// A large live heap of pointers makes every mark phase long, and a low
	// GOGC starts one as soon as the previous ends: a goroutine that keeps
	// allocating then spends most of its time in mark assists.
	live := make([]*node, 1<<21)
	for i := range live {
		live[i] = &node{}
		if i > 0 {
			live[i].next = live[i-1]
		}
	}
	defer runtime.KeepAlive(live)
	prev := debug.SetGCPercent(1)
	defer debug.SetGCPercent(prev)

	var cycles uint64
	data, span := recording(t, func(ctx context.Context) {
		before := readGCCycles()
		start := time.Now()
		for time.Since(start) < scenarioWait {
			for range 100 {
				allocSink = append(allocSink, make([]byte, 32<<10))
				if len(allocSink) > 250 {
					allocSink = allocSink[:0]
				}
			}
		}
		cycles = readGCCycles() - before
	})
	allocSink = nil

	// No clock outside the trace measures assist time: runtime/metrics'
	// /cpu/classes/gc/mark/assist:cpu-seconds is the CPU time of every
	// goroutine's assists (the flight recorder's own too, since it copies
	// every trace batch), accounted at the end of each GC cycle. It read up
	// to 21% above the span's assist time on a quiet machine, and 25% below
	// on a loaded one, where wall time in an assist is not CPU time. So the
	// checks are the dominant bucket, and the GC cycles, which
	// runtime/metrics counts exactly.
	return outcome{data: data, span: span, want: analysis.StateGCAssist,
		check: func(t *testing.T, d *analysis.Diagnosis) {
			main := d.Goroutines[0]
			// Cycles that completed during the span, and up to one at each
			// end that overlapped it.
			assert.InDelta(t, cycles+1, d.GC.Cycles, 1.5, "GC cycles; runtime/metrics counted %d completed", cycles)
			assert.Greater(t, d.GC.MarkOverlap, d.Duration/2)
			assert.GreaterOrEqual(t, d.GC.Assist, main.Buckets[analysis.StateGCAssist])
			assert.Contains(t, d.Verdict, "in GC mark assist, allocating in analysis_test.scenarioAlloc")
			assert.Contains(t, d.Verdict, "GC marking during")
		}}
}

func scenarioSyscall(t *testing.T) outcome {
	var slept time.Duration
	data, span := recording(t, func(ctx context.Context) {
		ts := syscall.NsecToTimespec(scenarioWait.Nanoseconds())
		slept = timed(func() {
			for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
			}
		})
	})
	return outcome{data: data, span: span, want: analysis.StateSyscall, wantDur: slept,
		check: func(t *testing.T, d *analysis.Diagnosis) {
			assert.Contains(t, d.Verdict, "in system calls in analysis_test.scenarioSyscall")
			require.NotEmpty(t, d.Episodes)
			assert.Equal(t, analysis.StateSyscall, d.Episodes[0].State)
			assert.True(t, hasFunc(d.Episodes[0].Stack, "syscall.Nanosleep"), "stack %v", d.Episodes[0].Stack)
		}}
}

func scenarioNetwork(t *testing.T) outcome {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	served := make(chan struct{})
	// The server answers each request scenarioWait late.
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		time.Sleep(scenarioWait)
		_, _ = c.Write([]byte("pong"))
	}()
	defer func() { <-served }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer conn.Close()

	var waited time.Duration
	data, span := recording(t, func(ctx context.Context) {
		_, err := conn.Write([]byte("ping"))
		require.NoError(t, err)
		buf := make([]byte, 4)
		waited = timed(func() { _, err = io.ReadFull(conn, buf) })
		require.NoError(t, err)
	})
	return outcome{data: data, span: span, want: analysis.StateBlockedNetwork, wantDur: waited,
		check: func(t *testing.T, d *analysis.Diagnosis) {
			assert.Contains(t, d.Verdict, "waiting on the network in analysis_test.scenarioNetwork")
			require.NotEmpty(t, d.Episodes)
			assert.True(t, hasFunc(d.Episodes[0].Stack, "net.(*conn).Read"), "stack %v", d.Episodes[0].Stack)
		}}
}

func scenarioNoTask(t *testing.T) outcome {
	var (
		slept time.Duration
		id    int64
	)
	r := startRecorder(t, defaultRecorder)
	span := r.spanNoTask(func(ctx context.Context) {
		id = goid()
		slept = timed(func() { time.Sleep(scenarioWait) })
	})
	data := r.snapshot()
	return outcome{data: data, span: span, want: analysis.StateBlockedSleep, wantDur: slept,
		check: func(t *testing.T, d *analysis.Diagnosis) {
			assert.NotZero(t, d.Task, "the end, logged right after the SDK's task ended, ties the span to the task")
			assert.Equal(t, id, d.MainGoroutine)
		}}
}

func goroutineByID(d *analysis.Diagnosis, id int64) *analysis.Goroutine {
	for i := range d.Goroutines {
		if d.Goroutines[i].ID == id {
			return &d.Goroutines[i]
		}
	}
	return nil
}

// hasFunc reports whether a frame's function ends in suffix.
func hasFunc(stack []analysis.Frame, suffix string) bool {
	for _, f := range stack {
		if len(f.Func) >= len(suffix) && f.Func[len(f.Func)-len(suffix):] == suffix {
			return true
		}
	}
	return false
}
