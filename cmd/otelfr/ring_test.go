package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// TestAnalyzeDiskRing reads a disk ring directly: while its process runs,
// and once it is left as a crash leaves it (no clean marker, the crash
// output written).
func TestAnalyzeDiskRing(t *testing.T) {
	dir := t.TempDir()
	rec, err := otelfr.Start(otelfr.WithDisk(dir))
	require.NoError(t, err)
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, held := tp.Tracer("cmd_test").Start(context.Background(), "held")
	logSpan(ctx, "start", held.SpanContext())
	ctx, done := tp.Tracer("cmd_test").Start(context.Background(), "done")
	logSpan(ctx, "start", done.SpanContext())
	logSpan(ctx, "end", done.SpanContext())
	done.End()
	// Ends the generation: the markers are on disk.
	_, err = rec.WriteSnapshot(t.Context(), io.Discard, "manual")
	require.NoError(t, err)

	code, out, errs := runCmd("analyze", dir)
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, "disk ring ("+otelfr.ReasonDisk+")")
	assert.Contains(t, out, held.SpanContext().SpanID().String())
	assert.NotContains(t, out, done.SpanContext().SpanID().String(), "ended: not open")
	assert.NotContains(t, out, "crash output")

	require.NoError(t, rec.Stop(t.Context()))
	require.NoError(t, os.Remove(filepath.Join(dir, "clean")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "crash.txt"), []byte("panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n"), 0o600))
	code, out, errs = runCmd("analyze", dir)
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, "disk ring ("+otelfr.ReasonCrash+")")
	assert.Contains(t, out, "crash output:\n  panic: boom\n")
	assert.Contains(t, out, "open at the end of the window: ")
	assert.Contains(t, out, held.SpanContext().SpanID().String())

	code, out, errs = runCmd("analyze", dir, "--json")
	require.Equal(t, exitOK, code, errs)
	var r struct {
		Reason      string           `json:"reason"`
		WindowStart time.Time        `json:"window_start"`
		WindowEnd   time.Time        `json:"window_end"`
		CrashOutput string           `json:"crash_output"`
		OpenSpans   []map[string]any `json:"open_spans"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, otelfr.ReasonCrash, r.Reason)
	assert.Equal(t, "panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n", r.CrashOutput)
	require.Len(t, r.OpenSpans, 1)
	assert.Equal(t, held.SpanContext().SpanID().String(), r.OpenSpans[0]["span_id"])
	assert.True(t, r.WindowStart.Before(r.WindowEnd))

	code, _, errs = runCmd("analyze", t.TempDir())
	assert.Equal(t, exitError, code)
	assert.Contains(t, errs, "no whole generation")
}
