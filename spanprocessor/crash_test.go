package spanprocessor_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/internal/otlptest"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// TestCrashSnapshotStoredAndExported runs a program that records in disk
// mode and panics; a new process's span processor, over the same
// directory, stores its crash snapshot in a DirStore and exports its
// attachment span, in a trace of its own, to an OTLP receiver, with the
// panic's text and the spans open at the crash.
func TestCrashSnapshotStoredAndExported(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "crashchild")
	out, err := exec.Command("go", "build", "-o", bin, "../otelfr/testdata/crashchild").CombinedOutput()
	require.NoError(t, err, "%s", out)
	dir := t.TempDir()
	cmd := exec.Command(bin, "-dir", dir, "-die", "panic", "-after", "3s")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	open := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "open" {
			open[f[2]] = true
		}
	}
	require.Error(t, cmd.Wait(), "the child panics")
	require.Len(t, open, 3)

	recv := otlptest.NewReceiver(t)
	rec, err := otelfr.Start(otelfr.WithDisk(dir))
	require.NoError(t, err)
	defer rec.Stop(context.Background())
	require.True(t, rec.HasCrash())
	store, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	otlp, err := otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(recv.Endpoint()), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	proc := spanprocessor.New(sdktrace.NewSimpleSpanProcessor(otlp), rec, exporter.New(store, otlp),
		spanprocessor.WithDiagnoser(analysis.NewDiagnoser()))
	defer proc.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	spans, err := recv.WaitForSpans(ctx, func(s []otlptest.Span) bool { return len(s) > 0 })
	require.NoError(t, err)
	require.Len(t, spans, 1)
	att := spans[0]
	assert.Equal(t, otelfr.AttachmentSpanName, att.Name)
	assert.Empty(t, att.ParentSpanID, "a trace of its own")
	assert.Empty(t, att.Links)
	assert.Equal(t, otelfr.ReasonCrash, att.Attributes[string(otelfr.SnapshotReasonKey)])
	assert.Contains(t, att.Attributes[string(otelfr.SnapshotCrashOutputKey)], "panic: crashchild: deliberate panic")
	assert.LessOrEqual(t, len(att.Attributes[string(otelfr.SnapshotCrashOutputKey)].(string)), otelfr.MaxCrashOutputAttribute)
	// The three held spans, and the load's spans in flight then (one per
	// goroutine at most).
	n := att.Attributes[string(analysis.CrashOpenSpansKey)].(int64)
	assert.True(t, n >= 3 && n <= 7, "%d spans open", n)
	var listed int
	for _, ev := range att.Events {
		if ev.Name == analysis.OpenSpanEventName && open[ev.Attributes[string(analysis.OpenSpanSpanIDKey)].(string)] {
			listed++
		}
	}
	assert.Equal(t, 3, listed, "each span open at the crash is an event")

	infos, err := store.List(t.Context())
	require.NoError(t, err)
	require.Len(t, infos, 1)
	assert.Equal(t, att.Attributes[string(otelfr.SnapshotIDKey)], infos[0].ID)
	assert.Equal(t, otelfr.ReasonCrash, infos[0].Reason)
	assert.Contains(t, infos[0].CrashOutput, "panic: crashchild: deliberate panic")
	assert.Contains(t, infos[0].CrashOutput, "goroutine 1")
	assert.False(t, rec.HasCrash(), "stored, then removed")
	assert.Equal(t, int64(1), proc.Stats().Snapshots)
}

// TestCrashSnapshotKeptWhenTheStoreFails: a crash snapshot the store
// refuses stays in the ring's directory, for the next Processor (or the
// next start) to store.
func TestCrashSnapshotKeptWhenTheStoreFails(t *testing.T) {
	dir := t.TempDir()
	// What a crash leaves: a ring without the clean marker.
	rec, err := otelfr.Start(otelfr.WithDisk(dir))
	require.NoError(t, err)
	_, err = rec.WriteSnapshot(t.Context(), io.Discard, "manual") // a whole generation
	require.NoError(t, err)
	require.NoError(t, rec.Stop(t.Context()))
	require.NoError(t, os.Remove(filepath.Join(dir, "clean")))

	rec, err = otelfr.Start(otelfr.WithDisk(dir))
	require.NoError(t, err)
	defer rec.Stop(context.Background())
	require.True(t, rec.HasCrash())
	ds, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	store := &failingStore{Store: ds}

	proc := spanprocessor.New(newRecordingProcessor(), rec, exporter.New(store, nil))
	require.NoError(t, proc.ForceFlush(t.Context()), "the worker is past its post-mortem")
	errs := handled.Take()
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], errDiskFull)
	assert.Equal(t, int64(1), proc.Stats().Errors["store"])
	assert.True(t, rec.HasCrash(), "kept")
	require.NoError(t, proc.Shutdown(t.Context()))

	store.healed.Store(true)
	proc = spanprocessor.New(newRecordingProcessor(), rec, exporter.New(store, nil))
	require.NoError(t, proc.ForceFlush(t.Context()))
	assert.False(t, rec.HasCrash(), "stored, then removed")
	infos, err := ds.List(t.Context())
	require.NoError(t, err)
	require.Len(t, infos, 1)
	assert.Equal(t, otelfr.ReasonCrash, infos[0].Reason)
	assert.Equal(t, int64(1), proc.Stats().Snapshots)
	require.NoError(t, proc.Shutdown(t.Context()))
}
