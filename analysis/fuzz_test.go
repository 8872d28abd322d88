package analysis_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	rt "runtime/trace"
	"strconv"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// The seed snapshots under testdata/fuzz/FuzzAnalyze name their spans with
// these IDs, so that the fuzzer's mutations of them still find a span to
// analyze.
var (
	fuzzTraceID = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	fuzzSpanID  = trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
)

func FuzzAnalyze(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("go 1.26 trace\x00\x00\x00"))
	f.Add([]byte("go 1.25 trace\x00\x00\x00\x01\x01\x00\x00\x00"))
	f.Add([]byte("go 1.26 trace\x00\x00\x00\x34\x34"))
	f.Fuzz(func(t *testing.T, data []byte) {
		use := func(d *analysis.Diagnosis, err error) {
			if err != nil {
				if !errors.Is(err, analysis.ErrNotTrace) && !errors.Is(err, analysis.ErrUnsupportedVersion) &&
					!errors.Is(err, analysis.ErrSpanNotFound) {
					t.Fatalf("error outside the documented sentinels: %v", err)
				}
				if d != nil {
					t.Fatalf("a diagnosis with error %v", err)
				}
				return
			}
			if d == nil {
				return
			}
			for _, g := range d.Goroutines {
				if g.Buckets.Total() != g.Time {
					t.Fatalf("goroutine %d: buckets %v do not add up to %v", g.ID, g.Buckets, g.Time)
				}
			}
			d.Attributes()
			d.Events()
			if _, err := json.Marshal(d); err != nil {
				t.Fatalf("JSON: %v", err)
			}
		}
		use(analysis.Analyze(data, analysis.Span{TraceID: fuzzTraceID, SpanID: fuzzSpanID}))
		use(analysis.Analyze(data, analysis.Span{SpanID: fuzzSpanID, Start: time.Unix(1, 0), End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}))
		infos, err := analysis.Spans(data)
		use(nil, err)
		for i, in := range infos {
			if i == 3 {
				break
			}
			if in.SpanID.IsValid() {
				use(analysis.Analyze(data, analysis.Span{TraceID: in.TraceID, SpanID: in.SpanID, Start: in.Start, End: in.End}))
			}
		}
	})
}

var writeSeeds = flag.Bool("write-fuzz-seeds", false, "rewrite the seed corpus of FuzzAnalyze in testdata/fuzz")

// fixedIDs names every span with fuzzTraceID and fuzzSpanID.
type fixedIDs struct{}

func (fixedIDs) NewIDs(context.Context) (trace.TraceID, trace.SpanID) { return fuzzTraceID, fuzzSpanID }
func (fixedIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	return trace.SpanID{0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11}
}

// TestWriteFuzzSeeds writes small real snapshots, and corrupted copies, as
// FuzzAnalyze's seed corpus, when run with -write-fuzz-seeds.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-fuzz-seeds to rewrite the seed corpus")
	}
	seeds := map[string]func(t *testing.T) []byte{
		"mutex": func(t *testing.T) []byte {
			var c cache
			locked := make(chan int64)
			done := make(chan struct{})
			r := startRecorder(t, defaultRecorder, sdktrace.WithIDGenerator(fixedIDs{}))
			go func() { defer close(done); c.refresh(locked, 2*time.Millisecond) }()
			<-locked
			r.span(func(ctx context.Context) { c.get() })
			<-done
			return r.snapshot()
		},
		"children": func(t *testing.T) []byte {
			r := startRecorder(t, defaultRecorder, sdktrace.WithIDGenerator(fixedIDs{}))
			r.span(func(ctx context.Context) {
				var wg sync.WaitGroup
				ch := make(chan int)
				for i := range 3 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, s := r.tp.Tracer("seed").Start(ctx, "child")
						time.Sleep(time.Millisecond)
						ch <- i
						s.End()
					}()
				}
				for range 3 {
					<-ch
				}
				wg.Wait()
			})
			return r.snapshot()
		},
		"gc": func(t *testing.T) []byte {
			r := startRecorder(t, defaultRecorder, sdktrace.WithIDGenerator(fixedIDs{}))
			r.span(func(ctx context.Context) { runtime.GC() })
			return r.snapshot()
		},
		"partial": func(t *testing.T) []byte {
			r := startRecorder(t, rt.FlightRecorderConfig{MinAge: time.Millisecond, MaxBytes: 1 << 20}, sdktrace.WithIDGenerator(fixedIDs{}))
			r.span(func(ctx context.Context) {
				time.Sleep(5 * time.Millisecond)
				r.advance()
				time.Sleep(5 * time.Millisecond)
			})
			return r.snapshot()
		},
		"notask": func(t *testing.T) []byte {
			r := startRecorder(t, defaultRecorder, sdktrace.WithIDGenerator(fixedIDs{}))
			r.spanNoTask(func(ctx context.Context) { time.Sleep(time.Millisecond) })
			return r.snapshot()
		},
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzAnalyze")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		b := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
		t.Logf("seed %s: %d raw bytes, %d encoded", name, len(data), len(b))
		if len(b) > 48<<10 {
			t.Fatalf("seed %s: %d bytes, want at most 48 KiB", name, len(b))
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, run := range seeds {
		var data []byte
		t.Run(name, func(t *testing.T) { data = run(t) })
		if _, err := analysis.Analyze(data, analysis.Span{SpanID: fuzzSpanID}); err != nil {
			t.Fatalf("seed %s: %v", name, err)
		}
		write(name, data)
		if name == "mutex" {
			write(name+"-truncated", data[:len(data)*2/3])
			flipped := append([]byte(nil), data...)
			for i := 100; i < len(flipped); i += 97 {
				flipped[i] ^= 0x5a
			}
			write(name+"-flipped", flipped)
		}
	}
}
