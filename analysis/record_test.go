package analysis_test

import (
	"bytes"
	"context"
	"runtime"
	rt "runtime/trace"
	"strconv"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// recorder runs a real flight recorder and a real OpenTelemetry SDK
// TracerProvider, whose recording spans start runtime/trace tasks while the
// recorder runs. Only one flight recorder may run per process: tests that
// use a recorder must not run in parallel.
type recorder struct {
	t  testing.TB
	fr *rt.FlightRecorder
	tp *sdktrace.TracerProvider
}

// defaultRecorder is the flight recorder configuration of most tests: a
// window that holds a whole scenario.
var defaultRecorder = rt.FlightRecorderConfig{MinAge: 5 * time.Second, MaxBytes: 64 << 20}

func startRecorder(t testing.TB, cfg rt.FlightRecorderConfig, opts ...sdktrace.TracerProviderOption) *recorder {
	t.Helper()
	fr := rt.NewFlightRecorder(cfg)
	if err := fr.Start(); err != nil {
		t.Fatalf("starting the flight recorder: %v", err)
	}
	r := &recorder{t: t, fr: fr, tp: sdktrace.NewTracerProvider(opts...)}
	t.Cleanup(func() {
		fr.Stop()
		_ = r.tp.Shutdown(context.Background())
	})
	return r
}

// span runs work inside a span and logs the span's identity as otelfr's
// TracerProvider wrapper does: into the SDK's task right after Start, and,
// for a span of 10 ms or more, on the goroutine right after End.
func (r *recorder) span(work func(ctx context.Context)) analysis.Span {
	return r.spanLogged(true, work)
}

// spanNoTask is span with the identity logged outside any task, on the
// goroutine, as otelfr's span processor does when used alone: the start
// before the SDK's task begins, the end after it ended.
func (r *recorder) spanNoTask(work func(ctx context.Context)) analysis.Span {
	return r.spanLogged(false, work)
}

func (r *recorder) spanLogged(inTask bool, work func(ctx context.Context)) analysis.Span {
	ctx, s := r.tp.Tracer("analysis_test").Start(context.Background(), "scenario")
	sc := s.SpanContext()
	logCtx := ctx
	if !inTask {
		logCtx = context.Background()
	}
	logSpan(logCtx, "start", sc)
	work(ctx)
	s.End()
	ro := s.(sdktrace.ReadOnlySpan)
	if !inTask || ro.EndTime().Sub(ro.StartTime()) >= 10*time.Millisecond {
		logSpan(context.Background(), "end", sc)
	}
	return analysis.Span{
		TraceID: sc.TraceID(),
		SpanID:  sc.SpanID(),
		Name:    ro.Name(),
		Start:   ro.StartTime(),
		End:     ro.EndTime(),
	}
}

// snapshot writes the flight recorder's window out.
func (r *recorder) snapshot() []byte {
	r.t.Helper()
	var buf bytes.Buffer
	if _, err := r.fr.WriteTo(&buf); err != nil {
		r.t.Fatalf("writing the snapshot: %v", err)
	}
	return buf.Bytes()
}

// recording runs work in a span under a fresh flight recorder and returns
// the snapshot taken right after the span ended, and the span.
func recording(t testing.TB, work func(ctx context.Context)) ([]byte, analysis.Span) {
	t.Helper()
	r := startRecorder(t, defaultRecorder)
	span := r.span(work)
	data := r.snapshot()
	r.fr.Stop()
	return data, span
}

// logSpan writes a span's identity into the execution trace, in the
// format documented at otelfr.LogCategory, into the task ctx carries.
func logSpan(ctx context.Context, event string, sc trace.SpanContext) {
	rt.Log(ctx, otelfr.LogCategory, event+" "+sc.TraceID().String()+" "+sc.SpanID().String())
}

// goid returns the calling goroutine's ID, from its stack trace header
// ("goroutine 42 [running]:").
func goid() int64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(string(buf))
	id, _ := strconv.ParseInt(f[1], 10, 64)
	return id
}

// timed returns how long f took.
func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
