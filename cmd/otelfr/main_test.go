package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	rt "runtime/trace"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// handled collects what the package reports to otel.Handle.
var handled *testutil.ErrorSink

// envRunMain makes the test binary, re-executed by a test, run the
// command itself with its arguments: the command as a process of its own,
// that a test can signal, without building it.
const envRunMain = "OTELFR_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
	}
	handled = testutil.InstallErrorSink()
	testutil.VerifyTestMain(m, handled)
}

// snapshot is a real flight recorder snapshot holding two spans: slow,
// which waited 50 ms on a mutex, and other.
var snapshot struct {
	once        sync.Once
	data        []byte
	slow, other trace.SpanContext
	err         error
}

func logSpan(ctx context.Context, event string, sc trace.SpanContext) {
	rt.Log(ctx, otelfr.LogCategory, event+" "+sc.TraceID().String()+" "+sc.SpanID().String())
}

// writeSnapshot records the snapshot once and writes it into a file.
func writeSnapshot(t *testing.T) string {
	s := &snapshot
	s.once.Do(func() {
		fr := rt.NewFlightRecorder(rt.FlightRecorderConfig{MinAge: 5 * time.Second})
		if s.err = fr.Start(); s.err != nil {
			return
		}
		defer fr.Stop()
		tp := sdktrace.NewTracerProvider()
		defer tp.Shutdown(context.Background())
		tracer := tp.Tracer("cmd_test")
		span := func(name string, work func()) trace.SpanContext {
			ctx, sp := tracer.Start(context.Background(), name)
			logSpan(ctx, "start", sp.SpanContext())
			work()
			logSpan(ctx, "end", sp.SpanContext())
			sp.End()
			return sp.SpanContext()
		}
		var mu sync.Mutex
		held := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			mu.Lock()
			close(held)
			time.Sleep(50 * time.Millisecond)
			mu.Unlock()
		}()
		<-held
		s.slow = span("slow", func() {
			mu.Lock()
			//lint:ignore SA2001 waiting for the lock is the point
			mu.Unlock()
		})
		<-done
		s.other = span("other", func() {})
		var buf bytes.Buffer
		_, s.err = fr.WriteTo(&buf)
		s.data = buf.Bytes()
	})
	require.NoError(t, s.err)
	name := filepath.Join(t.TempDir(), "snapshot.trace")
	require.NoError(t, os.WriteFile(name, s.data, 0o600))
	return name
}

// runCmd runs the command in-process.
func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestAnalyzeSpan(t *testing.T) {
	file := writeSnapshot(t)
	slow := snapshot.slow
	for _, args := range [][]string{
		{"analyze", file, "--span", slow.SpanID().String()},
		{"analyze", "--span", slow.SpanID().String(), file},
		{"analyze", file, "-span=" + slow.TraceID().String() + ":" + strings.ToUpper(slow.SpanID().String())},
	} {
		code, out, errOut := runCmd(args...)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
		lines := strings.Split(out, "\n")
		assert.Equal(t, `span `+slow.SpanID().String()+` "slow" in trace `+slow.TraceID().String()+`: complete`, lines[0])
		assert.Regexp(t, `^verdict: \d+% of \d+ ms blocked on sync.Mutex in `, lines[1], "the verdict comes first")
		assert.Contains(t, out, "goroutines (2):")
		assert.Regexp(t, `\n  \d+ +main +\d+\.\d+ms +blocked.mutex \d+\.\d+ms \(\d+%\)`, out)
		assert.Regexp(t, `\n  \d+ +waker `, out)
		assert.Contains(t, out, "\nGC: mark phase overlap ")
		assert.Contains(t, out, "\ntop blocking episodes:\n 1. goroutine ")
		assert.Contains(t, out, "blocked.mutex (sync) for ")
		assert.Contains(t, out, "      sync.(*Mutex).Lock\n          ")
		assert.Contains(t, out, "    woken by goroutine ")
		assert.Contains(t, out, "      sync.(*Mutex).Unlock\n")
	}
}

func TestAnalyzeSpanJSON(t *testing.T) {
	file := writeSnapshot(t)
	code, out, errOut := runCmd("analyze", file, "--span", snapshot.slow.SpanID().String(), "--json", "--episodes", "1")
	require.Equal(t, 0, code, errOut)
	var d struct {
		Span struct {
			SpanID string `json:"span_id"`
			Name   string `json:"name"`
		} `json:"span"`
		Status     string            `json:"status"`
		Verdict    string            `json:"verdict"`
		Duration   string            `json:"duration"`
		Goroutines []json.RawMessage `json:"goroutines"`
		Episodes   []json.RawMessage `json:"episodes"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &d), out)
	assert.Equal(t, snapshot.slow.SpanID().String(), d.Span.SpanID)
	assert.Equal(t, "slow", d.Span.Name)
	assert.Equal(t, "complete", d.Status)
	assert.Contains(t, d.Verdict, "sync.Mutex")
	_, err := time.ParseDuration(d.Duration)
	assert.NoError(t, err)
	assert.Len(t, d.Goroutines, 2)
	assert.Len(t, d.Episodes, 1)
}

func TestListSpans(t *testing.T) {
	file := writeSnapshot(t)
	code, out, errOut := runCmd("analyze", file)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "TRACE ID")
	for _, sc := range []trace.SpanContext{snapshot.slow, snapshot.other} {
		assert.Regexp(t, sc.TraceID().String()+`  `+sc.SpanID().String()+`  \w+ +\S+Z +\S+ +complete +\d+ +\d+\n`, out)
	}

	code, out, errOut = runCmd("analyze", "--json", file)
	require.Equal(t, 0, code, errOut)
	var infos []struct {
		SpanID string `json:"span_id"`
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &infos))
	names := map[string]string{}
	for _, in := range infos {
		names[in.SpanID] = in.Name
	}
	assert.Equal(t, "slow", names[snapshot.slow.SpanID().String()])
	assert.Equal(t, "other", names[snapshot.other.SpanID().String()])
}

func TestAnalyzeStdin(t *testing.T) {
	writeSnapshot(t)
	var out, errb bytes.Buffer
	code := run([]string{"analyze", "-", "--span", snapshot.other.SpanID().String()}, bytes.NewReader(snapshot.data), &out, &errb)
	require.Equal(t, 0, code, errb.String())
	assert.Contains(t, out.String(), `"other"`)
}

func TestErrors(t *testing.T) {
	file := writeSnapshot(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}
	notTrace := write("notes.txt", []byte("these are not the bytes you are looking for"))
	future := write("future.trace", append([]byte("go 1.99 trace\x00\x00\x00"), snapshot.data[16:]...))
	truncated := write("truncated.trace", snapshot.data[:len(snapshot.data)/2])
	unknown := "0123456789abcdef"

	tests := []struct {
		name    string
		args    []string
		code    int
		message string
	}{
		{"no command", nil, 2, "usage:"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"no file", []string{"analyze"}, 2, "want one FILE, have 0"},
		{"two files", []string{"analyze", file, file}, 2, "want one FILE, have 2"},
		{"bad flag", []string{"analyze", file, "--nope"}, 2, "flag provided but not defined: -nope"},
		{"short span ID", []string{"analyze", file, "--span", "abc"}, 2, "want a span ID of 16 hex digits"},
		{"not hex", []string{"analyze", file, "--span", "0123456789abcdeg"}, 2, "span ID"},
		{"short trace ID", []string{"analyze", file, "--span", "abc:" + unknown}, 2, "want a trace ID of 32 hex digits"},
		{"zero span ID", []string{"analyze", file, "--span", "0000000000000000"}, 2, "the span ID is zero"},
		{"missing file", []string{"analyze", filepath.Join(dir, "nope.trace")}, 1, "no such file"},
		{"not a trace", []string{"analyze", notTrace}, 1, notTrace + " is not a Go execution trace"},
		{"not a trace, with span", []string{"analyze", notTrace, "--span", unknown}, 1, "is not a Go execution trace"},
		{"unsupported version", []string{"analyze", future, "--span", unknown}, 1, "unknown or unsupported trace version go 1.99"},
		{"truncated", []string{"analyze", truncated}, 1, "a corrupt or truncated Go execution trace"},
		{"span not in window", []string{"analyze", file, "--span", unknown}, 1, "span " + unknown + " is not in the window of " + file},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(tt.args...)
			assert.Equal(t, tt.code, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tt.message)
		})
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := runCmd("help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "otelfr analyze FILE --span ID")
	code, _, errOut := runCmd("analyze", "-h")
	assert.Equal(t, 0, code)
	assert.Contains(t, errOut, "-span")
}

// hostileName is a span name that, printed raw, would recolour the
// terminal, ring its bell, overwrite its line and forge a table row.
const hostileName = "evil\x1b[31m\a\rFORGED\tROW\nFORGED 0123456789abcdef"

// writeHostileSnapshot records a snapshot holding a span, and so a
// runtime/trace task, named hostileName.
func writeHostileSnapshot(t *testing.T) (string, trace.SpanContext) {
	t.Helper()
	fr := rt.NewFlightRecorder(rt.FlightRecorderConfig{MinAge: 5 * time.Second})
	require.NoError(t, fr.Start())
	defer fr.Stop()
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, sp := tp.Tracer("cmd_test").Start(context.Background(), hostileName)
	sc := sp.SpanContext()
	logSpan(ctx, "start", sc)
	rt.Log(ctx, "app", hostileName) // for any output that prints log messages
	time.Sleep(5 * time.Millisecond)
	logSpan(ctx, "end", sc)
	sp.End()
	var buf bytes.Buffer
	_, err := fr.WriteTo(&buf)
	require.NoError(t, err)
	name := filepath.Join(t.TempDir(), "hostile.trace")
	require.NoError(t, os.WriteFile(name, buf.Bytes(), 0o600))
	return name, sc
}

// TestAnalyzePrintsTaskNamesRaw pins "otelfr analyze FILE prints task
// names raw": every string from the trace reaches the terminal escaped, so
// no control byte passes and no line is forged, in the list and in the
// diagnosis alike.
func TestAnalyzePrintsTaskNamesRaw(t *testing.T) {
	file, sc := writeHostileSnapshot(t)
	for _, args := range [][]string{
		{"analyze", file},
		{"analyze", file, "--span", sc.SpanID().String()},
	} {
		code, out, errOut := runCmd(args...)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
		for i, line := range strings.Split(out, "\n") {
			assert.False(t, strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 || r == 0x7f }),
				"%v: line %d holds a control byte: %q", args, i, line)
			assert.False(t, strings.HasPrefix(line, "FORGED"), "%v: a forged line: %q", args, line)
		}
		assert.Contains(t, out, strconv.Quote(hostileName), "%v: the name, escaped", args)
	}

	// JSON escapes by itself, and keeps the name as it is.
	code, out, errOut := runCmd("analyze", file, "--json")
	require.Equal(t, 0, code, errOut)
	var infos []struct {
		Name string `json:"name"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &infos))
	names := make([]string, len(infos))
	for i, in := range infos {
		names[i] = in.Name
	}
	assert.Contains(t, names, hostileName)
}

func TestAnalyzeProfile(t *testing.T) {
	file := writeSnapshot(t)
	slow := snapshot.slow.SpanID().String()
	out := filepath.Join(t.TempDir(), "block.pb.gz")
	code, _, errOut := runCmd("analyze", file, "--span", slow, "--profile", "block", "-o", out)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "wrote the block profile of span "+slow)
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	p, err := profile.Parse(f)
	require.NoError(t, err, "go tool pprof reads it")
	var onMutex bool
	for _, s := range p.Sample {
		for _, l := range s.Location {
			onMutex = onMutex || l.Line[0].Function.Name == "sync.(*Mutex).Lock"
		}
	}
	assert.True(t, onMutex, "the span's wait on the mutex")

	code, stdout, _ := runCmd("analyze", file, "--span", slow, "--profile", "sched", "-o", "-")
	require.Equal(t, 0, code)
	_, err = profile.ParseData([]byte(stdout))
	assert.NoError(t, err, "to standard output")

	for _, args := range [][]string{
		{"analyze", file, "--span", slow, "--profile", "heap", "-o", out},
		{"analyze", file, "--profile", "block", "-o", out},
		{"analyze", file, "--span", slow, "--profile", "block"},
	} {
		code, _, errOut := runCmd(args...)
		assert.Equal(t, exitUsage, code, "%v: %s", args, errOut)
	}
}
