package analysis_test

import (
	"context"
	"expvar"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	httppprof "net/http/pprof"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// Class 3: the world is stopped for a reason other than the GC, or by the
// GC on the program's request; the verdict names the reason and who
// stopped it.
func stwScenarios() []libScenario {
	return []libScenario{
		{"stacks of all goroutines dumped", classSTW, scenarioStackDump},
		{"goroutine stacks scraped from net-http-pprof", classSTW, scenarioGoroutineProfile},
		{"runtime.ReadMemStats polled", classSTW, scenarioReadMemStats},
		{"GOMAXPROCS changed in a loop", classSTW, scenarioGOMAXPROCS},
		{"runtime.GC forced in a loop", classSTW, scenarioForcedGC},
		{"debug.FreeOSMemory in a loop", classSTW, scenarioFreeOSMemory},
		{"expvar's memstats scraped", classSTW, scenarioExpvar},
		{"heap profile with gc=1 scraped from net-http-pprof", classSTW, scenarioHeapProfileGC},
		{"slog handler that attaches all stacks to errors", classSTW, scenarioErrorStacks},
	}
}

// running is the alternative state of the scenarios whose span the
// world's stops keep off its P (see truth.orState).
var (
	running  = analysis.StateRunning
	runnable = analysis.StateRunnable
)

// parked starts n goroutines that wait until the test ends: stacks for a
// dump to walk.
func parked(t *testing.T, n int) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-stop
		}()
	}
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
}

// background runs f in a loop until the returned function is called, and
// returns how long the calls took in all.
func background(f func()) (stop func() time.Duration) {
	var (
		quit  atomic.Bool
		total time.Duration
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for !quit.Load() {
			total += timed(f)
		}
	}()
	return func() time.Duration {
		quit.Store(true)
		<-done
		return total
	}
}

// dumpStacks writes every goroutine's stack, as a debug endpoint does.
//
//go:noinline
func dumpStacks(buf []byte) { runtime.Stack(buf, true) }

// priceBatch is the span's own work: a CPU-bound loop.
//
//go:noinline
func priceBatch(d time.Duration) (n int) {
	for start := time.Now(); time.Since(start) < d; {
		for i := range 1000 {
			n += i
		}
	}
	return n
}

func scenarioStackDump(t *testing.T, p *pipe) truth {
	parked(t, 10000)
	buf := make([]byte, 64<<20)
	// A watchdog dumps the stacks every millisecond. (Back to back, the
	// dumps would starve the span: it never gets a P between two of
	// them.)
	stop := background(func() {
		dumpStacks(buf)
		time.Sleep(time.Millisecond)
	})
	p.span("price batch", func(ctx context.Context) { priceBatch(libWait) })
	stop()
	// runtime.Stack stops the world for most of its work: while it runs,
	// the span's goroutine waits for a P. A clock around it also counts
	// stopping and starting the world, and the work it does with the
	// world running: 10% to 20% more than the stops, so no bucket check.
	return truth{state: analysis.StateRunnable, orState: &running,
		place: " in analysis_test.priceBatch",
		root:  []string{"the world was stopped for", "all goroutines stack trace", "analysis_test.dumpStacks"}}
}

func scenarioGoroutineProfile(t *testing.T, p *pipe) truth {
	parked(t, 30000)
	// A profiling agent scrapes the goroutine profile in text form.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	scrape := func() {
		resp, err := srv.Client().Get(srv.URL + "/debug/pprof/goroutine?debug=2")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	stop := background(scrape)
	// The span ends before the scrapes do: it does not wait for the last.
	p.span("price batch", func(ctx context.Context) { priceBatch(libWait) })
	stop()
	// The handler, all library code, dumps every stack with the world
	// stopped: runnable behind the stops, named after the profiler.
	return truth{state: analysis.StateRunnable, orState: &running,
		place: " in analysis_test.priceBatch",
		root:  []string{"the world was stopped for", "all goroutines stack trace", "pprof.writeGoroutineStacks"}}
}

// pollMemStats reads the memory statistics, as a metrics exporter does.
//
//go:noinline
func pollMemStats(ms *runtime.MemStats) { runtime.ReadMemStats(ms) }

func scenarioReadMemStats(t *testing.T, p *pipe) truth {
	var ms runtime.MemStats
	stop := background(func() { pollMemStats(&ms) })
	p.span("price batch", func(ctx context.Context) { priceBatch(libWait) })
	stop()
	// Polled back to back, the stops leave the span's goroutine little
	// time on its P.
	return truth{state: analysis.StateRunnable, orState: &running,
		place: " in analysis_test.priceBatch",
		root:  []string{"the world was stopped for", "read mem stats", "analysis_test.pollMemStats"}}
}

// resize changes GOMAXPROCS and back, as a container-aware autoscaler
// might.
//
//go:noinline
func resize(n int) { runtime.GOMAXPROCS(runtime.GOMAXPROCS(n)) }

func scenarioGOMAXPROCS(t *testing.T, p *pipe) truth {
	prev := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(prev)
	stop := background(func() { resize(1) })
	p.span("price batch", func(ctx context.Context) { priceBatch(libWait) })
	stop()
	// While GOMAXPROCS is 1, the span shares its P with the resizer.
	return truth{state: analysis.StateRunning, orState: &runnable,
		place: " in analysis_test.priceBatch",
		root:  []string{"the world was stopped for", "GOMAXPROCS", "analysis_test.resize"}}
}

// heap is a live heap of pointers for the collector to mark.
func heap(n int) []*node {
	live := make([]*node, n)
	for i := range live {
		live[i] = &node{}
		if i > 0 {
			live[i].next = live[i-1]
		}
	}
	return live
}

// collect forces a collection, as code that "frees memory" does.
//
//go:noinline
func collect() { runtime.GC() }

// release returns memory to the OS, collecting first.
//
//go:noinline
func release() { debug.FreeOSMemory() }

func scenarioForcedGC(t *testing.T, p *pipe) truth {
	live := heap(1 << 20)
	defer runtime.KeepAlive(live)
	parked(t, 5000)
	stop := background(collect)
	p.span("price batch", func(ctx context.Context) { priceBatch(libWait) })
	stop()
	return truth{state: analysis.StateRunning,
		place: "running in analysis_test.priceBatch",
		root:  []string{"GC", "analysis_test.collect"}}
}

func scenarioFreeOSMemory(t *testing.T, p *pipe) truth {
	live := heap(1 << 20)
	defer runtime.KeepAlive(live)
	parked(t, 5000)
	stop := background(release)
	p.span("price batch", func(ctx context.Context) { priceBatch(libWait) })
	stop()
	return truth{state: analysis.StateRunning,
		place: "running in analysis_test.priceBatch",
		root:  []string{"GC", "analysis_test.release"}}
}

// scraper serves mux and, until the returned function is called, GETs
// path from it in a loop, as a monitoring agent does.
func scraper(t *testing.T, mux *http.ServeMux, path string) (stop func() time.Duration) {
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return background(func() {
		resp, err := srv.Client().Get(srv.URL + path)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

func scenarioHeapProfileGC(t *testing.T, p *pipe) truth {
	live := heap(1 << 20)
	defer runtime.KeepAlive(live)
	parked(t, 5000)
	// gc=1 asks the handler for a collection before the profile, so
	// that it counts only live objects: an agent that sets it forces a
	// collection at every scrape.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	stop := scraper(t, mux, "/debug/pprof/heap?gc=1")
	p.span("price batch", func(ctx context.Context) { priceBatch(libWait) })
	stop()
	// As with runtime.GC in a loop: the span runs, behind the marking
	// and the stops, and the collections are the handler's doing.
	return truth{state: analysis.StateRunning,
		place: "running in analysis_test.priceBatch",
		root:  []string{"GC", "pprof.handler.ServeHTTP"}}
}

func scenarioExpvar(t *testing.T, p *pipe) truth {
	// expvar's handler publishes runtime.MemStats as "memstats", read
	// afresh, with the world stopped, on every request.
	mux := http.NewServeMux()
	mux.Handle("/debug/vars", expvar.Handler())
	stop := scraper(t, mux, "/debug/vars")
	p.span("price batch", func(ctx context.Context) { priceBatch(libWait) })
	stop()
	return truth{state: analysis.StateRunnable, orState: &running,
		place: " in analysis_test.priceBatch",
		root:  []string{"the world was stopped for", "read mem stats", "expvar.memstats"}}
}

// stackHandler is a slog handler that, as some error reporters do,
// attaches every goroutine's stack to each error it logs.
type stackHandler struct {
	slog.Handler
	buf []byte
}

//go:noinline
func (h *stackHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		n := runtime.Stack(h.buf, true)
		r.AddAttrs(slog.Int("stacks", n))
	}
	return h.Handler.Handle(ctx, r)
}

// failRequest logs a failed request.
//
//go:noinline
func failRequest(log *slog.Logger) {
	log.Error("request failed", "status", 503)
	time.Sleep(time.Millisecond)
}

func scenarioErrorStacks(t *testing.T, p *pipe) truth {
	parked(t, 10000)
	h := &stackHandler{Handler: slog.NewJSONHandler(io.Discard, nil), buf: make([]byte, 64<<20)}
	log := slog.New(h)
	// A backend that fails every request, logged one by one.
	stop := background(func() { failRequest(log) })
	p.span("price batch", func(ctx context.Context) { priceBatch(libWait) })
	stop()
	// As a watchdog's dumps: runnable behind the stops, which the
	// handler's runtime.Stack asked for, called through slog.
	return truth{state: analysis.StateRunnable, orState: &running,
		place: " in analysis_test.priceBatch",
		root:  []string{"the world was stopped for", "all goroutines stack trace", "analysis_test.(*stackHandler).Handle"}}
}
