package spanprocessor_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

func benchProcessor(b *testing.B, opts ...spanprocessor.Option) (*spanprocessor.Processor, func()) {
	rec, err := otelfr.Start(otelfr.WithMinInterval(100 * time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	store, err := snapstore.NewDirStore(b.TempDir(), snapstore.WithMaxCount(3))
	if err != nil {
		b.Fatal(err)
	}
	proc := spanprocessor.New(&countingProcessor{}, rec, exporter.New(store, tracetest.NewNoopExporter()), opts...)
	return proc, func() {
		_ = proc.Shutdown(context.Background())
		_ = rec.Stop(context.Background())
	}
}

// BenchmarkOnEndNormal is the hot path: a span no trigger selects.
func BenchmarkOnEndNormal(b *testing.B) {
	proc, stop := benchProcessor(b)
	defer stop()
	end := time.Now()
	s := tracetest.SpanStub{Name: "fast", StartTime: end.Add(-time.Millisecond), EndTime: end}.Snapshot()
	b.ReportAllocs()
	for b.Loop() {
		proc.OnEnd(s)
	}
}

// BenchmarkOnEndStorm times OnEnd when every span is anomalous, from
// several goroutines, and reports the 99th percentile: OnEnd must not
// block even when the worker is saturated.
func BenchmarkOnEndStorm(b *testing.B) {
	proc, stop := benchProcessor(b, spanprocessor.WithLatencyThreshold(time.Microsecond))
	defer stop()
	end := time.Now()
	s := tracetest.SpanStub{Name: "slow", StartTime: end.Add(-time.Millisecond), EndTime: end}.Snapshot()
	var (
		mu  sync.Mutex
		all []time.Duration
	)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var d []time.Duration
		for pb.Next() {
			t0 := time.Now()
			proc.OnEnd(s)
			d = append(d, time.Since(t0))
		}
		mu.Lock()
		all = append(all, d...)
		mu.Unlock()
	})
	b.StopTimer()
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(all[len(all)*99/100].Nanoseconds()), "p99-ns")
		b.ReportMetric(float64(all[len(all)-1].Nanoseconds()), "max-ns")
	}
}

// BenchmarkSpanRecorderOn is a whole span through the SDK with the
// Processor alone (no wrapper) while the flight recorder runs: a name of
// ordinary length, and one over the 1 KiB bound that OnStart renames and
// OnEnd restores.
func BenchmarkSpanRecorderOn(b *testing.B) {
	proc, stop := benchProcessor(b)
	defer stop()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
	tracer := tp.Tracer("bench")
	for _, name := range []string{"GET /users/{id}", strings.Repeat("x", 2048)} {
		b.Run(fmt.Sprintf("name=%dB", len(name)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, s := tracer.Start(context.Background(), name)
				s.End()
			}
		})
	}
}
