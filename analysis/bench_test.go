package analysis_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	rt "runtime/trace"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xtrace "golang.org/x/exp/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// benchSnapshot is a snapshot of about benchSize taken under a steady
// synthetic load of small spans, and the span that ended last in it: a
// request that waited on a contended mutex.
var benchSnapshot struct {
	once sync.Once
	data []byte
	span analysis.Span
	took time.Duration
}

const benchSize = 32 << 20

func loadSnapshot(b *testing.B) ([]byte, analysis.Span) {
	s := &benchSnapshot
	s.once.Do(func() {
		start := time.Now()
		s.data, s.span = recordUnderLoad(b)
		s.took = time.Since(start)
	})
	if s.data == nil {
		b.Fatal("no snapshot")
	}
	return s.data, s.span
}

// recordUnderLoad runs a flight recorder with a window of 64 MiB and a
// minute while a load of requests runs, until the window holds benchSize.
// The load has the shape of a service: client goroutines each run a span
// that reads a mutex-protected map, hands a job to a worker pool over a
// channel and waits for its answer, and pauses. It writes 2 to 3 MiB of
// trace per second here, so generations are about that size.
func recordUnderLoad(b *testing.B) ([]byte, analysis.Span) {
	r := startRecorder(b, rt.FlightRecorderConfig{MinAge: time.Minute, MaxBytes: 64 << 20})
	tracer := r.tp.Tracer("bench")
	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		mu      sync.Mutex
		table   = map[int]int{}
		jobs    = make(chan chan int)
		clients = 16
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for reply := range jobs {
				reply <- len(jobs)
			}
		}()
	}
	var cwg sync.WaitGroup
	for c := range clients {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			reply := make(chan int)
			for i := 0; !stop.Load(); i++ {
				ctx, s := tracer.Start(context.Background(), "request")
				logSpan(ctx, "start", s.SpanContext())
				mu.Lock()
				table[c*1000+i%1000]++
				mu.Unlock()
				jobs <- reply
				<-reply
				logSpan(ctx, "end", s.SpanContext())
				s.End()
				time.Sleep(100 * time.Microsecond)
			}
		}()
	}
	// Each WriteTo ends a generation early: measure the rate once, then
	// let the runtime cut its own, one a second, until the window is full.
	start := time.Now()
	time.Sleep(2 * time.Second)
	data := r.snapshot()
	rate := float64(len(data)) / time.Since(start).Seconds()
	b.Logf("load: %.1f MiB of trace per second", rate/(1<<20))
	time.Sleep(time.Duration(float64(benchSize-len(data)) / rate * float64(time.Second)))
	for data = r.snapshot(); len(data) < benchSize; data = r.snapshot() {
		time.Sleep(300 * time.Millisecond)
	}
	// Half a generation later, so that the last span's generation holds
	// the usual amount of load before it.
	time.Sleep(500 * time.Millisecond)

	// The last span: a request stuck behind a slow holder of the mutex.
	held := make(chan struct{})
	go func() {
		mu.Lock()
		close(held)
		time.Sleep(50 * time.Millisecond)
		mu.Unlock()
	}()
	<-held
	span := r.span(func(ctx context.Context) {
		mu.Lock()
		//lint:ignore SA2001 waiting for the lock is the point
		mu.Unlock()
	})
	data = r.snapshot()
	stop.Store(true)
	cwg.Wait()
	close(jobs)
	wg.Wait()
	r.fr.Stop()
	return data, span
}

// BenchmarkAnalyze diagnoses the last span of a 32 MiB snapshot, and
// compares with parsing the whole snapshot.
//
//	go test -run '^$' -bench BenchmarkAnalyze -benchtime 20x ./analysis
func BenchmarkAnalyze(b *testing.B) {
	data, span := loadSnapshot(b)
	b.Run("last-span", func(b *testing.B) {
		var d *analysis.Diagnosis
		for b.Loop() {
			var err error
			if d, err = analysis.Analyze(data, span); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(data))/(1<<20), "snapshot-MiB")
		b.ReportMetric(float64(d.Parsed.Bytes)/(1<<20), "parsed-MiB")
		b.ReportMetric(float64(d.Parsed.Generations), "parsed-gens")
		b.ReportMetric(float64(d.Parsed.TotalGenerations), "total-gens")
		b.Logf("verdict: %s", d.Verdict)
	})
	b.Run("last-span-by-id", func(b *testing.B) {
		for b.Loop() {
			if _, err := analysis.Analyze(data, analysis.Span{SpanID: span.SpanID}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse-whole-file", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			r, err := xtrace.NewReader(bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := r.ReadEvent(); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("spans", func(b *testing.B) {
		for b.Loop() {
			if _, err := analysis.Spans(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
