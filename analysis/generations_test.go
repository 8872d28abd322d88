package analysis

import (
	"bytes"
	"context"
	rt "runtime/trace"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/internal/tracefmt"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// snapshotWithGenerations records a span that sleeps 20 ms in each of
// three generations of a fresh flight recorder's window, after one
// generation without it.
func snapshotWithGenerations(t *testing.T) ([]byte, Span) {
	fr := rt.NewFlightRecorder(rt.FlightRecorderConfig{MinAge: 5 * time.Second})
	require.NoError(t, fr.Start())
	defer fr.Stop()
	span := Span{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}}
	ids := span.TraceID.String() + " " + span.SpanID.String()
	_, err := fr.WriteTo(new(bytes.Buffer))
	require.NoError(t, err)
	ctx, task := rt.NewTask(context.Background(), "generations")
	rt.Log(ctx, otelfr.LogCategory, "start "+ids)
	for range 3 {
		time.Sleep(20 * time.Millisecond)
		_, err := fr.WriteTo(new(bytes.Buffer)) // ends the generation
		require.NoError(t, err)
	}
	rt.Log(ctx, otelfr.LogCategory, "end "+ids)
	task.End()
	var buf bytes.Buffer
	_, err = fr.WriteTo(&buf)
	require.NoError(t, err)
	return buf.Bytes(), span
}

func TestSplitGenerations(t *testing.T) {
	data, span := snapshotWithGenerations(t)
	gens, err := generations(data)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(gens), 5)
	assert.Equal(t, tracefmt.HeaderLen, gens[0].off)
	assert.Equal(t, len(data), gens[len(gens)-1].end)
	for i, g := range gens {
		assert.Equal(t, byte(tracefmt.EvEndOfGeneration), data[g.end-1], "generation %d ends with its marker", i)
		if i > 0 {
			assert.Equal(t, gens[i-1].end, g.off, "generations are contiguous")
			assert.Equal(t, gens[i-1].num+1, g.num)
			assert.False(t, g.start().Before(gens[i-1].start()), "generations are in time order")
		}
		assert.NotEmpty(t, g.strings)
	}
	assert.WithinDuration(t, time.Now(), gens[len(gens)-1].start(), time.Minute, "clock snapshots convert to wall time")

	startGen, endGen := findMarkers(data, gens, 0, len(gens)-1, span)
	assert.Positive(t, startGen)
	assert.Equal(t, len(gens)-1, endGen)
	assert.GreaterOrEqual(t, endGen-startGen, 3)
	other := span
	other.TraceID[0] = 9
	startGen, endGen = findMarkers(data, gens, 0, len(gens)-1, other)
	assert.Equal(t, -1, startGen)
	assert.Equal(t, -1, endGen)
	startGen, _ = findMarkers(data, gens, 0, len(gens)-1, Span{SpanID: span.SpanID})
	assert.GreaterOrEqual(t, startGen, 0, "a zero trace ID matches any")

	for i := range gens {
		assert.Equal(t, i, containing(gens, gens[i].start()))
		assert.Equal(t, i, containing(gens, gens[i].start().Add(time.Nanosecond)))
	}
	assert.Equal(t, 0, containing(gens, gens[0].start().Add(-time.Hour)))
	assert.Equal(t, len(gens)-1, containing(gens, time.Now().Add(time.Hour)))
}

// TestGo125Framing analyzes a Go 1.25 trace: Go 1.26's without the
// end-of-generation markers, the only event Go 1.26 added.
func TestGo125Framing(t *testing.T) {
	data, span := snapshotWithGenerations(t)
	gens, err := generations(data)
	require.NoError(t, err)
	old := []byte("go 1.25 trace\x00\x00\x00")
	for _, g := range gens {
		old = append(old, data[g.off:g.end-1]...)
	}
	oldGens, err := generations(old)
	require.NoError(t, err)
	require.Len(t, oldGens, len(gens))
	for i := range gens {
		assert.Equal(t, gens[i].num, oldGens[i].num)
		assert.Equal(t, gens[i].start(), oldGens[i].start())
	}

	d, err := Analyze(old, span)
	require.NoError(t, err)
	assert.Equal(t, StatusComplete, d.Status)
	assert.Equal(t, "generations", d.Span.Name)
	state, dur := d.Goroutines[0].Buckets.Dominant()
	assert.Equal(t, StateBlockedSleep, state)
	assert.Greater(t, dur, 50*time.Millisecond)
	assert.Less(t, d.Parsed.Generations, d.Parsed.TotalGenerations)
}
