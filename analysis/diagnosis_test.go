package analysis_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

var _ spanprocessor.Diagnoser = (*analysis.Diagnoser)(nil)

// contended records a span that waits about 50 ms on a mutex another
// goroutine holds, then sleeps about 20 ms, and returns how long each took.
func contended(t *testing.T) (data []byte, span analysis.Span, blocked, slept time.Duration) {
	var c cache
	locked := make(chan int64)
	done := make(chan struct{})
	r := startRecorder(t, defaultRecorder)
	go func() {
		defer close(done)
		c.refresh(locked, 50*time.Millisecond)
	}()
	<-locked
	span = r.span(func(ctx context.Context) {
		blocked = timed(func() { c.get() })
		slept = timed(func() { time.Sleep(20 * time.Millisecond) })
	})
	data = r.snapshot()
	<-done
	return data, span, blocked, slept
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestDiagnosisAttributesAndEvents(t *testing.T) {
	data, span, blocked, slept := contended(t)
	d, err := analysis.Analyze(data, span)
	require.NoError(t, err)
	blockedMs, sleptMs := float64(blocked)/1e6, float64(slept)/1e6

	attrs := attrMap(d.Attributes())
	assert.Equal(t, d.Verdict, attrs[analysis.DiagnosisVerdictKey].AsString())
	assert.Equal(t, "complete", attrs[analysis.DiagnosisStatusKey].AsString())
	assert.Equal(t, d.Cause, attrs[analysis.DiagnosisCauseKey].AsString())
	assert.Equal(t, int64(len(d.Goroutines)), attrs[analysis.DiagnosisGoroutinesKey].AsInt64())
	mutex := attrs[attribute.Key(analysis.DiagnosisBucketKeyPrefix+"blocked.mutex")]
	assert.InEpsilon(t, blockedMs, mutex.AsFloat64(), 0.1, "milliseconds")
	sleep := attrs[attribute.Key(analysis.DiagnosisBucketKeyPrefix+"blocked.sleep")]
	assert.InEpsilon(t, sleptMs, sleep.AsFloat64(), 0.1)
	for k := range attrs {
		if name, ok := strings.CutPrefix(string(k), analysis.DiagnosisBucketKeyPrefix); ok {
			assert.Contains(t, []string{"running", "runnable", "blocked.mutex", "blocked.sleep"}, name)
		}
	}
	if blocked > slept {
		first := d.Attributes()[4]
		assert.Equal(t, analysis.DiagnosisBucketKeyPrefix+"blocked.mutex", string(first.Key), "largest bucket first")
	}

	evs := d.Events()
	require.Len(t, evs, len(d.Episodes))
	i := slices.IndexFunc(d.Episodes, func(ep analysis.Episode) bool { return ep.State == analysis.StateBlockedMutex })
	require.GreaterOrEqual(t, i, 0, "the mutex episode")
	ev := evs[i]
	assert.Equal(t, analysis.EpisodeEventName, ev.Name)
	assert.Equal(t, d.Episodes[i].Start, ev.Time)
	ea := attrMap(ev.Attributes)
	assert.Equal(t, "blocked.mutex", ea[analysis.EpisodeStateKey].AsString())
	assert.InEpsilon(t, blockedMs, ea[analysis.EpisodeDurationKey].AsFloat64(), 0.1)
	assert.Equal(t, d.MainGoroutine, ea[analysis.EpisodeGoroutineKey].AsInt64())
	assert.Contains(t, ea[analysis.EpisodeStackKey].AsString(), "sync.(*Mutex).Lock (")
	assert.Contains(t, ea[analysis.EpisodeStackKey].AsString(), "\ngithub.com/otelfr/otel-flightrecorder/analysis_test.(*cache).get (")
	assert.Equal(t, d.Episodes[i].Waker.Goroutine, ea[analysis.EpisodeWakerKey].AsInt64())
	assert.Contains(t, ea[analysis.EpisodeWakerStackKey].AsString(), "(*cache).refresh")
	for _, ev := range evs {
		if ea := attrMap(ev.Attributes); ea[analysis.EpisodeStateKey].AsString() == "blocked.sleep" {
			_, ok := ea[analysis.EpisodeWakerKey]
			assert.False(t, ok, "no waker for a sleep")
		}
	}
}

func TestWithTopEpisodes(t *testing.T) {
	data, span := recording(t, func(ctx context.Context) {
		for range 8 {
			time.Sleep(time.Millisecond)
		}
	})
	tests := []struct {
		opts []analysis.Option
		want int
		// all: every episode is kept; besides the sleeps, a GC may have
		// parked the goroutine.
		all bool
	}{
		{nil, 5, false},
		{[]analysis.Option{analysis.WithTopEpisodes(3)}, 3, false},
		{[]analysis.Option{analysis.WithTopEpisodes(0)}, 0, false},
		{[]analysis.Option{analysis.WithTopEpisodes(-1)}, 5, false},
		{[]analysis.Option{analysis.WithTopEpisodes(100)}, 8, true},
	}
	for _, tt := range tests {
		d, err := analysis.Analyze(data, span, tt.opts...)
		require.NoError(t, err)
		if tt.all {
			assert.GreaterOrEqual(t, len(d.Episodes), tt.want)
		} else {
			assert.Len(t, d.Episodes, tt.want)
		}
		for i := 1; i < len(d.Episodes); i++ {
			assert.GreaterOrEqual(t, d.Episodes[i-1].Duration, d.Episodes[i].Duration, "longest first")
		}
	}
}

type jsonEpisode struct {
	State    string `json:"state"`
	Duration string `json:"duration"`
	Stack    []struct {
		Func string `json:"func"`
		Line int    `json:"line"`
	} `json:"stack"`
	Waker *struct {
		Goroutine int64 `json:"goroutine"`
	} `json:"waker"`
}

func TestDiagnosisJSON(t *testing.T) {
	data, span, blocked, _ := contended(t)
	d, err := analysis.Analyze(data, span)
	require.NoError(t, err)
	b, err := json.Marshal(d)
	require.NoError(t, err)

	var got struct {
		Span struct {
			TraceID string    `json:"trace_id"`
			SpanID  string    `json:"span_id"`
			Start   time.Time `json:"start"`
		} `json:"span"`
		Status     string `json:"status"`
		Verdict    string `json:"verdict"`
		Duration   string `json:"duration"`
		Goroutines []struct {
			ID      int64             `json:"id"`
			Role    string            `json:"role"`
			Time    string            `json:"time"`
			Buckets map[string]string `json:"buckets"`
		} `json:"goroutines"`
		GC       map[string]any `json:"gc"`
		Episodes []jsonEpisode  `json:"episodes"`
	}
	require.NoError(t, json.Unmarshal(b, &got), "%s", b)
	assert.Equal(t, span.TraceID.String(), got.Span.TraceID)
	assert.Equal(t, span.SpanID.String(), got.Span.SpanID)
	assert.True(t, span.Start.Equal(got.Span.Start))
	assert.Equal(t, "complete", got.Status)
	assert.Equal(t, d.Verdict, got.Verdict)
	dur, err := time.ParseDuration(got.Duration)
	require.NoError(t, err, "durations read as Go durations")
	assert.InDelta(t, d.Duration, dur, float64(time.Microsecond))
	require.NotEmpty(t, got.Goroutines)
	assert.Equal(t, "main", got.Goroutines[0].Role)
	mutex, err := time.ParseDuration(got.Goroutines[0].Buckets["blocked.mutex"])
	require.NoError(t, err)
	assert.InEpsilon(t, blocked, mutex, 0.1)
	assert.NotContains(t, got.Goroutines[0].Buckets, "blocked.cond", "empty buckets are left out")
	assert.IsType(t, "", got.GC["mark_overlap"])
	i := slices.IndexFunc(got.Episodes, func(ep jsonEpisode) bool { return ep.State == "blocked.mutex" })
	require.GreaterOrEqual(t, i, 0, "the mutex episode")
	assert.NotEmpty(t, got.Episodes[i].Stack)
	assert.NotNil(t, got.Episodes[i].Waker)
}

func TestDiagnoser(t *testing.T) {
	r := startRecorder(t, defaultRecorder)
	tracer := r.tp.Tracer("analysis_test")
	ctx, s := tracer.Start(context.Background(), "diagnosed")
	logSpan(ctx, "start", s.SpanContext())
	time.Sleep(20 * time.Millisecond)
	logSpan(ctx, "end", s.SpanContext())
	s.End()
	_, unlogged := tracer.Start(context.Background(), "unlogged")
	unlogged.End()
	data := r.snapshot()

	dg := analysis.NewDiagnoser(analysis.WithTopEpisodes(1))
	verdict, attrs, events, err := dg.Diagnose(t.Context(), data, s.(sdktrace.ReadOnlySpan))
	require.NoError(t, err)
	assert.Contains(t, verdict, "sleeping")
	assert.Equal(t, verdict, attrMap(attrs)[analysis.DiagnosisVerdictKey].AsString())
	assert.Len(t, events, 1)

	verdict, attrs, events, err = dg.Diagnose(t.Context(), data, unlogged.(sdktrace.ReadOnlySpan))
	assert.ErrorIs(t, err, analysis.ErrSpanNotFound)
	assert.Empty(t, verdict)
	assert.Equal(t, []attribute.KeyValue{analysis.DiagnosisStatusKey.String("not_found")}, attrs)
	assert.Empty(t, events)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, _, err = dg.Diagnose(ctx, data, s.(sdktrace.ReadOnlySpan))
	assert.ErrorIs(t, err, context.Canceled)
}

// TestGoroutinesAddUp checks, over a span with busy helpers, that every
// goroutine's buckets add up to its time and no goroutine has more time
// than the span.
func TestGoroutinesAddUp(t *testing.T) {
	data, span := recording(t, func(ctx context.Context) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					mu.Lock()
					spin(time.Millisecond)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	})
	d, err := analysis.Analyze(data, span)
	require.NoError(t, err)
	t.Logf("verdict: %s", d.Verdict)
	assert.GreaterOrEqual(t, len(d.Goroutines), 5)
	for _, g := range d.Goroutines {
		assert.Equal(t, g.Time, g.Buckets.Total())
		assert.LessOrEqual(t, g.Time, d.Duration)
		if g.Role == analysis.RoleChild {
			assert.Positive(t, g.Buckets[analysis.StateBlockedMutex]+g.Buckets[analysis.StateRunnable], "goroutine %d: %v", g.ID, g.Buckets)
		}
	}
	assert.Contains(t, d.Verdict, "blocked on sync.WaitGroup")
}
