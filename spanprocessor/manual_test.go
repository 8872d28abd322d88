package spanprocessor_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

func TestManualSnapshot(t *testing.T) {
	p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(0)})

	info, err := p.proc.Snapshot(t.Context(), "deploy check")
	require.NoError(t, err)
	ctx, s := p.tp.Tracer("test").Start(t.Context(), "current")
	info2, err := p.proc.Snapshot(ctx, "suspicious")
	require.NoError(t, err)
	s.End()

	att := p.mem.GetSpans()
	require.Len(t, att, 2)
	own, child := att[0], att[1]
	assert.False(t, own.Parent.IsValid(), "a trace of its own")
	assert.Equal(t, info.ID, attrMapOf(own.Attributes)[otelfr.SnapshotIDKey])
	assert.Equal(t, "deploy check", attrMapOf(own.Attributes)[otelfr.SnapshotReasonKey])
	assert.Equal(t, s.SpanContext(), child.Parent, "a child of the current span")
	assert.Equal(t, s.SpanContext().TraceID(), child.SpanContext.TraceID())
	assert.Equal(t, info2.ID, attrMapOf(child.Attributes)[otelfr.SnapshotIDKey])
	require.Len(t, info2.Spans, 1)
	assert.Equal(t, s.SpanContext().SpanID().String(), info2.Spans[0].SpanID)

	_, err = p.proc.Snapshot(t.Context(), "too soon")
	require.NoError(t, err, "no interval limit in this pipeline")
	require.NoError(t, p.proc.Shutdown(t.Context()))
	_, err = p.proc.Snapshot(t.Context(), "late")
	require.ErrorIs(t, err, otelfr.ErrStopped)
}

func attrMapOf(kvs []attribute.KeyValue) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

// TestSnapshotOnSignal sends SIGUSR1 to a subprocess running
// SnapshotOnSignal: a snapshot file appears and its path is logged.
func TestSnapshotOnSignal(t *testing.T) {
	if dir := os.Getenv("OTELFR_SIGNAL_HELPER_DIR"); dir != "" {
		signalHelper(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSnapshotOnSignal$", "-test.count=1")
	cmd.Env = append(os.Environ(), "OTELFR_SIGNAL_HELPER_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	sc := bufio.NewScanner(stdout)
	require.True(t, sc.Scan(), "the helper starts")
	require.Equal(t, "ready", sc.Text())
	require.NoError(t, cmd.Process.Signal(syscall.SIGUSR1))

	logged := regexp.MustCompile(`snapshot on user defined signal 1: (\S+\.trace)`)
	errs := bufio.NewScanner(stderr)
	var path string
	for errs.Scan() {
		if m := logged.FindStringSubmatch(errs.Text()); m != nil {
			path = m[1]
			break
		}
	}
	require.NotEmpty(t, path, "the path is logged")
	t.Logf("logged %s", path)
	assert.Equal(t, dir, filepath.Dir(path))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Positive(t, len(data))
}

func signalHelper(dir string) {
	rec, err := otelfr.Start()
	if err != nil {
		panic(err)
	}
	defer rec.Stop(context.Background())
	store, err := snapstore.NewDirStore(dir)
	if err != nil {
		panic(err)
	}
	proc := spanprocessor.New(newRecordingProcessor(), rec, exporter.New(store, nil))
	defer proc.Shutdown(context.Background())
	stop := proc.SnapshotOnSignal(context.Background())
	defer stop()
	fmt.Println("ready")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if infos, _ := store.List(context.Background()); len(infos) > 0 {
			time.Sleep(100 * time.Millisecond) // let the log line out
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUnsampledAnomalies(t *testing.T) {
	rec, err := otelfr.Start(otelfr.WithMinInterval(0))
	require.NoError(t, err)
	defer rec.Stop(context.Background())
	time.Sleep(100 * time.Millisecond)
	store, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	mem := tracetest.NewInMemoryExporter()
	proc := spanprocessor.New(sdktrace.NewSimpleSpanProcessor(mem), rec, exporter.New(store, mem),
		spanprocessor.WithLatencyThreshold(50*time.Millisecond))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(spanprocessor.RecordUnsampled(sdktrace.ParentBased(sdktrace.NeverSample()))),
		sdktrace.WithSpanProcessor(proc))
	defer tp.Shutdown(context.Background())
	tracer := tp.Tracer("test")

	_, normal := tracer.Start(t.Context(), "normal")
	normal.End()
	assert.False(t, normal.SpanContext().IsSampled(), "the head sampler dropped it")
	_, slow := tracer.Start(t.Context(), "slow", trace.WithTimestamp(time.Now().Add(-60*time.Millisecond)))
	slow.End()
	require.NoError(t, tp.ForceFlush(t.Context()))

	got := map[string]tracetest.SpanStub{}
	for _, s := range mem.GetSpans() {
		got[s.Name] = s
	}
	assert.NotContains(t, got, "normal", "unsampled normal spans are dropped as before")
	require.Contains(t, got, "slow", "the unsampled anomaly is exported")
	require.Contains(t, got, otelfr.AttachmentSpanName, "with its attachment")
	s := got["slow"]
	assert.Equal(t, "false", attrMapOf(s.Attributes)[otelfr.SampledKey])
	assert.True(t, s.SpanContext.IsSampled())
	assert.Equal(t, s.SpanContext.SpanID(), got[otelfr.AttachmentSpanName].Parent.SpanID())
	assert.True(t, got[otelfr.AttachmentSpanName].SpanContext.IsSampled())
}

func TestCooldown(t *testing.T) {
	p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(0)},
		spanprocessor.WithLatencyThreshold(10*time.Millisecond),
		spanprocessor.WithCooldown(time.Hour))
	p.span("noisy", 20*time.Millisecond)
	require.NoError(t, p.proc.ForceFlush(t.Context()))
	time.Sleep(5 * time.Millisecond)
	p.span("noisy", 20*time.Millisecond)
	require.NoError(t, p.proc.ForceFlush(t.Context()))
	time.Sleep(5 * time.Millisecond)
	p.span("quiet", 20*time.Millisecond)
	require.NoError(t, p.proc.ForceFlush(t.Context()))

	st := p.proc.Stats()
	assert.Equal(t, int64(2), st.Snapshots, "noisy once, quiet once")
	assert.Equal(t, int64(1), st.Skipped[spanprocessor.SkipCooldown])
	_, linked := attr(p.next.spans()["quiet"], otelfr.SnapshotIDKey)
	assert.True(t, linked, "the noisy route did not use up the quiet one's snapshot")
}

// fakeDiagnoser explains every span the same way.
type fakeDiagnoser struct{ calls, bytes int }

func (f *fakeDiagnoser) Diagnose(_ context.Context, data []byte, s sdktrace.ReadOnlySpan) (string, []attribute.KeyValue, []sdktrace.Event, error) {
	f.calls++
	f.bytes = len(data)
	v := "blocked on " + s.Name()
	attrs := []attribute.KeyValue{analysis.DiagnosisVerdictKey.String(v), analysis.DiagnosisCauseKey.String("cause of " + s.Name())}
	return v, attrs, []sdktrace.Event{{Name: analysis.EpisodeEventName}}, nil
}

func TestDiagnoser(t *testing.T) {
	d := &fakeDiagnoser{}
	var (
		mu       sync.Mutex
		verdicts []string
	)
	p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(time.Hour)},
		spanprocessor.WithLatencyThreshold(10*time.Millisecond),
		spanprocessor.WithCoalesceWindow(0),
		spanprocessor.WithDiagnoser(d),
		spanprocessor.WithOnAnomaly(func(o spanprocessor.Outcome) {
			mu.Lock()
			defer mu.Unlock()
			verdicts = append(verdicts, o.Verdict)
		}))
	p.span("first", 20*time.Millisecond)
	require.NoError(t, p.proc.ForceFlush(t.Context()))
	// A span ended before the first snapshot, reaching the worker after
	// it: it reuses the snapshot, read back from the store.
	end := time.Now().Add(-50 * time.Millisecond)
	_, s := p.tp.Tracer("test").Start(context.Background(), "second", trace.WithTimestamp(end.Add(-20*time.Millisecond)))
	s.End(trace.WithTimestamp(end))
	require.NoError(t, p.proc.ForceFlush(t.Context()))

	assert.Equal(t, 2, d.calls)
	att := p.mem.GetSpans()
	require.Len(t, att, 2)
	for _, a := range att {
		assert.Contains(t, attrMapOf(a.Attributes)[analysis.DiagnosisVerdictKey], "blocked on ")
		assert.Len(t, a.Events, 1)
	}
	infos, err := p.store.List(t.Context())
	require.NoError(t, err)
	require.Len(t, infos, 1)
	require.Len(t, infos[0].Spans, 2)
	assert.Equal(t, "blocked on first", infos[0].Spans[0].Verdict)
	assert.Equal(t, "blocked on second", infos[0].Spans[1].Verdict)
	assert.Equal(t, "cause of first", infos[0].Spans[0].Cause, "the cause is stored beside the verdict")
	assert.Contains(t, infos[0].Spans[0].Service, "unknown_service", "the span's own service.name, the SDK's default here")
	assert.Equal(t, map[string]int64{"cause of first": 1, "cause of second": 1}, p.proc.Stats().Causes)
	assert.Equal(t, int(infos[0].Size), d.bytes, "the whole trace, read back from the store")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"blocked on first", "blocked on second"}, verdicts, "WithOnAnomaly sees each verdict")
}

// corruptingDiagnoser hands the real analysis a damaged copy of the trace,
// as if the snapshot were malformed.
type corruptingDiagnoser struct{ real spanprocessor.Diagnoser }

func (c corruptingDiagnoser) Diagnose(ctx context.Context, data []byte, s sdktrace.ReadOnlySpan) (string, []attribute.KeyValue, []sdktrace.Event, error) {
	bad := slices.Clone(data[:len(data)/2])
	for i := 16; i < len(bad); i += 7 {
		bad[i] ^= 0xa5
	}
	return c.real.Diagnose(ctx, bad, s)
}

// TestDiagnoserFailure: a trace the analysis cannot read gives a clear
// error through otel.Handle, and nothing else is lost: the span is linked,
// the raw snapshot is stored and served, the attachment is exported.
func TestDiagnoserFailure(t *testing.T) {
	p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(time.Hour)},
		spanprocessor.WithLatencyThreshold(10*time.Millisecond),
		spanprocessor.WithCoalesceWindow(0),
		spanprocessor.WithDiagnoser(corruptingDiagnoser{analysis.NewDiagnoser()}))
	p.span("slow", 20*time.Millisecond)
	require.NoError(t, p.proc.ForceFlush(t.Context()))

	errs := handled.Take()
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "diagnosing span")
	assert.ErrorIs(t, errs[0], analysis.ErrMalformed, "a sentinel the caller can test")

	id, linked := attr(p.next.spans()["slow"], otelfr.SnapshotIDKey)
	require.True(t, linked, "the span is still linked")
	att := p.mem.GetSpans()
	require.Len(t, att, 1, "the attachment is exported")
	assert.NotContains(t, attrMapOf(att[0].Attributes), analysis.DiagnosisVerdictKey)
	f, info, err := p.store.Open(t.Context(), id)
	require.NoError(t, err, "the raw snapshot is kept")
	defer f.Close()
	assert.Positive(t, info.Size)
	require.Len(t, info.Spans, 1)
	assert.Empty(t, info.Spans[0].Verdict)
}
