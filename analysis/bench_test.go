package analysis_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	rt "runtime/trace"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
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

// benchFixtureEnv names a file that keeps the recorded snapshot (and
// FILE.json its span) between runs, so that two builds can be compared on
// the same trace: each recording differs in where the last span falls.
const benchFixtureEnv = "OTELFR_BENCH_ANALYZE_FIXTURE"

func loadSnapshot(b *testing.B) ([]byte, analysis.Span) {
	s := &benchSnapshot
	s.once.Do(func() {
		fixture := os.Getenv(benchFixtureEnv)
		if fixture != "" {
			data, err := os.ReadFile(fixture)
			js, jerr := os.ReadFile(fixture + ".json")
			if err == nil && jerr == nil {
				if s.span, err = unmarshalSpan(js); err == nil {
					s.data = data
					return
				}
			}
		}
		start := time.Now()
		s.data, s.span = recordUnderLoad(b)
		s.took = time.Since(start)
		if fixture != "" {
			js, err := marshalSpan(s.span)
			if err == nil {
				err = errors.Join(os.WriteFile(fixture, s.data, 0o644), os.WriteFile(fixture+".json", js, 0o644))
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	if s.data == nil {
		b.Fatal("no snapshot")
	}
	return s.data, s.span
}

// fixtureSpan is analysis.Span as the fixture keeps it: trace.TraceID
// and SpanID marshal to hex but do not unmarshal.
type fixtureSpan struct {
	TraceID, SpanID, Name string
	Start, End            time.Time
}

func marshalSpan(s analysis.Span) ([]byte, error) {
	return json.Marshal(fixtureSpan{s.TraceID.String(), s.SpanID.String(), s.Name, s.Start, s.End})
}

func unmarshalSpan(js []byte) (analysis.Span, error) {
	var f fixtureSpan
	if err := json.Unmarshal(js, &f); err != nil {
		return analysis.Span{}, err
	}
	tid, err := trace.TraceIDFromHex(f.TraceID)
	if err != nil {
		return analysis.Span{}, err
	}
	sid, err := trace.SpanIDFromHex(f.SpanID)
	if err != nil {
		return analysis.Span{}, err
	}
	return analysis.Span{TraceID: tid, SpanID: sid, Name: f.Name, Start: f.Start, End: f.End}, nil
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
//
// With OTELFR_BENCH_ANALYZE_FIXTURE=FILE, the snapshot is recorded once
// into FILE and read back by later runs.
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
