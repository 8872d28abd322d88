package analysis_test

import (
	"context"
	"encoding/json"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// Class 4: the span waits for a P; the verdict names where it waited and
// who held the Ps.
func runnableScenarios() []libScenario {
	return []libScenario{
		{"batch jobs that yield, on two Ps", classRunnable, scenarioBatchYield},
		{"JSON renderers on one P", classRunnable, scenarioRenderers},
		{"tight loops on two Ps", classRunnable, scenarioTightLoops},
	}
}

// batch is a CPU-bound background job.
type batch struct{ stop atomic.Bool }

// crunch works in slices of about 20 µs and yields after each, as a
// cooperative batch job does.
//
//go:noinline
func (b *batch) crunch() {
	for !b.stop.Load() {
		for t := time.Now(); time.Since(t) < 20*time.Microsecond; {
		}
		runtime.Gosched()
	}
}

// quote is the span's work, in slices that yield like the batch's.
//
//go:noinline
func quote(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		for t := time.Now(); time.Since(t) < 20*time.Microsecond; {
		}
		runtime.Gosched()
	}
}

// spinners runs n goroutines of f until the returned function is called.
func spinners(n int, f func(stop *atomic.Bool)) (stop func()) {
	var (
		quit atomic.Bool
		wg   sync.WaitGroup
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(&quit)
		}()
	}
	return func() {
		quit.Store(true)
		wg.Wait()
	}
}

func scenarioBatchYield(t *testing.T, p *pipe) truth {
	const procs, jobs = 2, 16
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)
	b := &batch{}
	stop := spinners(jobs, func(*atomic.Bool) { b.crunch() })
	var took time.Duration
	p.span("quote", func(ctx context.Context) { took = timed(func() { quote(libWait) }) })
	b.stop.Store(true)
	stop()
	// Round robin over the Ps at every yield: the span's goroutine gets
	// procs slots in jobs+1, and waits for the others.
	return truth{state: analysis.StateRunnable, dur: took * (jobs + 1 - procs) / (jobs + 1),
		place: "runnable, waiting for a P in analysis_test.quote",
		root:  []string{"16 goroutines in analysis_test.(*batch).crunch ran"}}
}

// renderer renders reports as JSON.
type renderer struct{ report *catalog }

//go:noinline
func (r *renderer) render(stop *atomic.Bool) {
	for !stop.Load() {
		if _, err := json.Marshal(r.report); err != nil {
			panic(err)
		}
	}
}

func scenarioRenderers(t *testing.T, p *pipe) truth {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	c := &catalog{}
	for i := range 200 {
		c.Items = append(c.Items, catalogItem{ID: i, Name: "item", Tags: []string{"a"}})
	}
	r := &renderer{report: c}
	stop := spinners(8, r.render)
	p.span("catalog", func(ctx context.Context) { encodeCatalog(c, libWait) })
	stop()
	// Preempted every 10 ms, the goroutines share the P in slices too
	// coarse for a clock to say how long the span waited: 8 of 9 slices,
	// give or take a few.
	return truth{state: analysis.StateRunnable,
		place: "runnable, waiting for a P in analysis_test.encodeCatalog",
		root:  []string{"8 goroutines in analysis_test.(*renderer).render ran"}}
}

// hash is a tight loop, preempted by the runtime only.
//
//go:noinline
func hash(stop *atomic.Bool) (h uint64) {
	for !stop.Load() {
		for i := range uint64(1000) {
			h = h*31 + i
		}
	}
	return h
}

func scenarioTightLoops(t *testing.T, p *pipe) truth {
	prev := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(prev)
	stop := spinners(12, func(s *atomic.Bool) { hash(s) })
	p.span("price batch", func(ctx context.Context) { priceBatch(libWait) })
	stop()
	return truth{state: analysis.StateRunnable,
		place: "runnable, waiting for a P in analysis_test.priceBatch",
		root:  []string{"12 goroutines in analysis_test.hash ran"}}
}
