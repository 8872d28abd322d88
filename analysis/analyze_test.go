package analysis_test

import (
	"context"
	"io"
	rt "runtime/trace"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// advance makes the flight recorder start a new generation: WriteTo
// flushes the current one.
func (r *recorder) advance() {
	r.t.Helper()
	if _, err := r.fr.WriteTo(io.Discard); err != nil {
		r.t.Fatalf("advancing the generation: %v", err)
	}
}

func TestAnalyzeLongSpanStartOutsideWindow(t *testing.T) {
	// Each WriteTo starts a new generation, every 100 ms here, and the
	// window keeps the generations of the last 200 ms (MinAge) and the one
	// that crosses that age: the start of the 700 ms span falls out of it.
	r := startRecorder(t, rt.FlightRecorderConfig{MinAge: 200 * time.Millisecond, MaxBytes: 4 << 20})
	var sleeps [][2]time.Time
	span := r.span(func(ctx context.Context) {
		for i := range 7 {
			start := time.Now()
			time.Sleep(100 * time.Millisecond)
			sleeps = append(sleeps, [2]time.Time{start, time.Now()})
			if i < 6 {
				r.advance()
			}
		}
	})
	data := r.snapshot()

	for _, s := range []analysis.Span{span, {SpanID: span.SpanID}} {
		d, err := analysis.Analyze(data, s)
		require.NoError(t, err)
		t.Logf("verdict: %s", d.Verdict)
		assert.Equal(t, analysis.StatusPartial, d.Status)
		assert.Greater(t, d.Start.Sub(span.Start), 200*time.Millisecond, "the interval starts at the window")
		assert.WithinDuration(t, span.End, d.End, time.Millisecond)
		assert.Contains(t, d.Verdict, "(partial: began before the window, which holds its last ")
		if s.Start.IsZero() {
			assert.True(t, d.Span.Start.IsZero(), "the start is unknown")
			assert.Empty(t, d.Span.Name, "its task's name is at its start, outside the window")
		} else {
			assert.Equal(t, span.Start, d.Span.Start, "the span's own start is kept")
		}

		// The buckets describe the part of the span in the window, and
		// nothing else: the sleeps that fall in it.
		var slept time.Duration
		for _, sl := range sleeps {
			if from, to := later(sl[0], d.Start), earlier(sl[1], d.End); to.After(from) {
				slept += to.Sub(from)
			}
		}
		main := d.Goroutines[0]
		assert.Equal(t, analysis.RoleMain, main.Role)
		assert.InDelta(t, d.Duration, main.Time, 0.01*float64(d.Duration))
		state, dur := main.Buckets.Dominant()
		assert.Equal(t, analysis.StateBlockedSleep, state)
		assert.InDelta(t, slept, dur, 0.1*float64(slept))
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func TestAnalyzeParsesOnlyOverlappingGenerations(t *testing.T) {
	r := startRecorder(t, defaultRecorder)
	var spans []analysis.Span
	for range 6 {
		// Under the wrapper's 10 ms: found by the start marker alone.
		spans = append(spans, r.span(func(ctx context.Context) { time.Sleep(5 * time.Millisecond) }))
		r.advance()
	}
	data := r.snapshot()
	single := 0
	for i, span := range spans {
		for _, s := range []analysis.Span{span, {TraceID: span.TraceID, SpanID: span.SpanID}} {
			d, err := analysis.Analyze(data, s)
			require.NoError(t, err)
			assert.Equal(t, analysis.StatusComplete, d.Status)
			assert.GreaterOrEqual(t, d.Parsed.TotalGenerations, 6)
			// The runtime also starts a generation every second, which may
			// fall inside a span.
			assert.LessOrEqual(t, d.Parsed.Generations, 2, "span %d", i)
			if d.Parsed.Generations == 1 {
				single++
			}
			state, _ := d.Goroutines[0].Buckets.Dominant()
			assert.Equal(t, analysis.StateBlockedSleep, state)
		}
	}
	assert.GreaterOrEqual(t, single, 8, "most spans lie within one generation")
}

func TestAnalyzeSpanNotFound(t *testing.T) {
	data, span := recording(t, func(ctx context.Context) {})
	other := span
	other.SpanID[0] ^= 0xff
	_, err := analysis.Analyze(data, other)
	assert.ErrorIs(t, err, analysis.ErrSpanNotFound)

	other = span
	other.TraceID[0] ^= 0xff
	_, err = analysis.Analyze(data, other)
	assert.ErrorIs(t, err, analysis.ErrSpanNotFound, "the trace ID must match too")

	_, err = analysis.Analyze(data, analysis.Span{TraceID: span.TraceID})
	assert.ErrorIs(t, err, analysis.ErrSpanNotFound, "a zero span ID")
}

func TestAnalyzeErrors(t *testing.T) {
	data, span := recording(t, func(ctx context.Context) {})
	header := func(s string) []byte { return append([]byte(s), data[16:]...) }
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, analysis.ErrNotTrace},
		{"text", []byte("hello, this is not a trace at all"), analysis.ErrNotTrace},
		{"bad header", header("go 1.26 trace\x00\x00x"), analysis.ErrNotTrace},
		{"newer Go", header("go 1.99 trace\x00\x00\x00"), analysis.ErrUnsupportedVersion},
		{"older Go", header("go 1.22 trace\x00\x00\x00"), analysis.ErrUnsupportedVersion},
		{"truncated", data[:len(data)/2], analysis.ErrMalformed},
		{"header only", data[:16], analysis.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := analysis.Analyze(tt.data, span)
			assert.ErrorIs(t, err, tt.want)
			assert.Nil(t, d)
			_, err = analysis.Spans(tt.data)
			assert.ErrorIs(t, err, tt.want)
		})
	}
	_, err := analysis.Analyze(header("go 1.99 trace\x00\x00\x00"), span)
	assert.ErrorContains(t, err, "unknown or unsupported trace version go 1.99", "the parser's message")
	assert.ErrorIs(t, analysis.ErrMalformed, analysis.ErrNotTrace)
}

func TestSpans(t *testing.T) {
	r := startRecorder(t, defaultRecorder)
	// Shorter than the wrapper's 10 ms: only its start is logged, and its
	// task's end is its end.
	withTask := r.span(func(ctx context.Context) { time.Sleep(5 * time.Millisecond) })
	onGoroutine := r.spanNoTask(func(ctx context.Context) {})
	// A span without otelfr's logs still has the SDK's task.
	_, plain := r.tp.Tracer("analysis_test").Start(context.Background(), "plain")
	plain.End()
	ctx, open := r.tp.Tracer("analysis_test").Start(context.Background(), "open")
	logSpan(ctx, "start", open.SpanContext())
	data := r.snapshot()
	open.End()

	infos, err := analysis.Spans(data)
	require.NoError(t, err)
	byName := map[string]analysis.SpanInfo{}
	for _, in := range infos {
		if in.SpanID == withTask.SpanID {
			byName["withTask"] = in
		}
		if in.SpanID == onGoroutine.SpanID {
			byName["onGoroutine"] = in
		}
		if in.Name == "plain" || in.Name == "open" {
			byName[in.Name] = in
		}
	}

	in := byName["withTask"]
	assert.Equal(t, withTask.TraceID, in.TraceID)
	assert.Equal(t, "scenario", in.Name)
	assert.NotZero(t, in.Task)
	assert.Equal(t, analysis.StatusComplete, in.Status)
	assert.WithinDuration(t, withTask.Start, in.Start, time.Millisecond)
	assert.WithinDuration(t, withTask.End, in.End, time.Millisecond)
	assert.InDelta(t, withTask.End.Sub(withTask.Start), in.Duration(), float64(time.Millisecond),
		"the span's start marker is logged right after its start, its task ends right after its end")
	assert.Positive(t, in.Goroutine)

	in = byName["onGoroutine"]
	assert.NotZero(t, in.Task, "the end, logged right after the task ended, ties the span to it")
	assert.Equal(t, "scenario", in.Name)
	assert.Equal(t, analysis.StatusComplete, in.Status)

	in = byName["plain"]
	assert.False(t, in.SpanID.IsValid(), "no identity logged")
	assert.NotZero(t, in.Task)
	assert.Equal(t, analysis.StatusComplete, in.Status)

	in = byName["open"]
	assert.True(t, in.SpanID.IsValid())
	assert.Equal(t, analysis.StatusPartial, in.Status, "not ended when the snapshot was taken")
	assert.True(t, in.End.IsZero())

	for i := 1; i < len(infos); i++ {
		assert.False(t, infos[i].Start.Before(infos[i-1].Start) && !infos[i].Start.IsZero(), "ordered by start")
	}
}

func TestAnalyzeLooksBackForWaitReasons(t *testing.T) {
	r := startRecorder(t, defaultRecorder)
	tracer := r.tp.Tracer("analysis_test")
	jobs := make(chan context.Context)
	done := make(chan struct{})
	ids := make(chan int64)
	go func() {
		ids <- goid()
		for ctx := range jobs {
			_, child := tracer.Start(ctx, "child")
			time.Sleep(20 * time.Millisecond)
			child.End()
			done <- struct{}{}
		}
	}()
	wid := <-ids
	// The worker now waits for a job. In the generation the span starts
	// in, its wait shows only as a status, without a reason: the reason is
	// in the generation before.
	time.Sleep(10 * time.Millisecond)
	r.advance()
	var sent time.Time
	span := r.span(func(ctx context.Context) {
		time.Sleep(20 * time.Millisecond)
		sent = time.Now()
		jobs <- ctx
		<-done
	})
	data := r.snapshot()
	close(jobs)

	d, err := analysis.Analyze(data, span)
	require.NoError(t, err)
	assert.Equal(t, 2, d.Parsed.Generations)
	w := goroutineByID(d, wid)
	require.NotNil(t, w)
	assert.Equal(t, analysis.RoleTask, w.Role)
	wait := sent.Sub(span.Start)
	assert.InDelta(t, wait, w.Buckets[analysis.StateBlockedChan], 0.1*float64(wait), "buckets %v", w.Buckets)
	assert.Zero(t, w.Buckets[analysis.StateBlockedOther])
}
