package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	xtrace "golang.org/x/exp/trace"

	"github.com/otelfr/otel-flightrecorder/internal/otlptest"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDemo runs the demo binary against a real OTLP receiver, with a short
// load and incidents in quick succession: every kind of incident produces
// an anomalous server span linked to a snapshot, with its attachment span;
// each snapshot URL serves a trace that parses; spans below the threshold
// and without error carry nothing; SIGINT exits cleanly.
func TestDemo(t *testing.T) {
	recv := otlptest.NewReceiver(t)
	bin := buildDemo(t)
	snapAddr := freeAddr(t)
	d := startDemo(t, bin,
		[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + recv.Endpoint(), "OTEL_BSP_SCHEDULE_DELAY=100"},
		"-addr", freeAddr(t), "-inventory-addr", freeAddr(t), "-snapshot-addr", snapAddr,
		"-dir", t.TempDir(), "-rate", "25", "-duration", "12s",
		"-incident-every", "1500ms", "-snapshot-interval", "500ms")
	d.waitFor(t, "load: done", 60*time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	spans, err := recv.WaitForSpans(ctx, func(s []otlptest.Span) bool {
		return len(linkedKinds(s)) == int(numKinds)
	})
	require.NoError(t, err, "every kind of incident gets a snapshot; got %v", linkedKinds(recv.Spans()))

	attachments := map[string][]otlptest.Span{} // by the span they link to
	for _, sp := range spans {
		if sp.Name == otelfr.AttachmentSpanName {
			require.Len(t, sp.Links, 1)
			attachments[sp.Links[0].SpanID] = append(attachments[sp.Links[0].SpanID], sp)
		}
	}
	urls := map[string]bool{}
	reasons := map[string]bool{}
	for _, sp := range spans {
		if sp.Name == otelfr.AttachmentSpanName {
			continue
		}
		id, _ := sp.Attributes[string(otelfr.SnapshotIDKey)].(string)
		if id == "" {
			if sp.EndTime.Sub(sp.StartTime) < 100*time.Millisecond && sp.StatusCode != 2 {
				assert.NotContains(t, sp.Attributes, string(otelfr.SnapshotSkippedKey), "a normal span %q", sp.Name)
			}
			continue
		}
		url, _ := sp.Attributes[string(otelfr.SnapshotURLKey)].(string)
		assert.Equal(t, "http://"+snapAddr+"/snapshots/"+id+"?span="+sp.SpanID, url)
		reasons[sp.Attributes[string(otelfr.SnapshotReasonKey)].(string)] = true
		urls[url] = true
		att := attachments[sp.SpanID]
		if assert.Len(t, att, 1, "span %q has one attachment", sp.Name) {
			assert.Equal(t, sp.TraceID, att[0].TraceID)
			assert.Equal(t, sp.SpanID, att[0].ParentSpanID)
			assert.Equal(t, id, att[0].Attributes[string(otelfr.SnapshotIDKey)])
			assert.Equal(t, sp.Resource["service.name"], att[0].Resource["service.name"])
		}
		assert.Contains(t, d.output(), url, "the snapshot's URL is logged")
	}
	assert.True(t, reasons["latency"], "latency anomalies: %v", reasons)
	assert.True(t, reasons["error"], "error anomalies: %v", reasons)

	for url := range urls {
		assertTrace(t, url)
	}
	d.stop(t)
}

// TestDemoWithoutCollector runs the demo as `go run ./examples/demo` does,
// with no OTLP endpoint: snapshots are still taken, logged and served, and
// nothing reports failed exports.
func TestDemoWithoutCollector(t *testing.T) {
	bin := buildDemo(t)
	d := startDemo(t, bin, nil,
		"-addr", freeAddr(t), "-inventory-addr", freeAddr(t), "-snapshot-addr", freeAddr(t),
		"-dir", t.TempDir(), "-rate", "20", "-duration", "3s", "-incident-every", "1s")
	line := d.waitFor(t, "snapshot http://", 30*time.Second)
	url := line[strings.LastIndex(line, "http://"):]
	assertTrace(t, url)
	d.waitFor(t, "load: done", 30*time.Second)
	d.stop(t)

	out := d.output()
	assert.Contains(t, out, "not exporting spans")
	for _, bad := range []string{"connection refused", "traces export", "rpc error", "otlp"} {
		assert.NotContains(t, out, bad)
	}
}

// linkedKinds returns the incident kinds named on server spans that are
// linked to a snapshot.
func linkedKinds(spans []otlptest.Span) map[string]bool {
	kinds := map[string]bool{}
	for _, sp := range spans {
		if _, ok := sp.Attributes[string(otelfr.SnapshotIDKey)]; !ok || sp.Name == otelfr.AttachmentSpanName {
			continue
		}
		list, _ := sp.Attributes[string(incidentsKey)].([]any)
		for _, k := range list {
			kinds[k.(string)] = true
		}
	}
	return kinds
}

// assertTrace fetches url and checks that it is a Go execution trace.
func assertTrace(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r, err := xtrace.NewReader(bytes.NewReader(data))
	require.NoError(t, err, url)
	events := 0
	for {
		_, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, url)
		events++
	}
	assert.Positive(t, events, url)
}

// buildDemo builds the demo binary, with the race detector when the test
// runs with it.
func buildDemo(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "demo")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	return bin
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// demo is a running demo process and the log it has written so far.
type demo struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the log is read to the end

	mu    sync.Mutex
	log   strings.Builder
	grown chan struct{} // closed and replaced on each new line
}

// startDemo starts bin with the OTEL_* variables of the environment
// replaced by env; the test's cleanup kills it if it still runs.
func startDemo(t *testing.T, bin string, env []string, args ...string) *demo {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") && !strings.HasPrefix(kv, "OTELFR_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	d := &demo{cmd: cmd, done: make(chan struct{}), grown: make(chan struct{})}
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			close(d.grown)
			d.grown = make(chan struct{})
			d.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-d.done
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("demo output:\n%s", d.output())
		}
	})
	return d
}

func (d *demo) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// waitFor waits until a line containing s is logged, and returns it.
func (d *demo) waitFor(t *testing.T, s string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for exited := false; ; {
		d.mu.Lock()
		out, grown := d.log.String(), d.grown
		d.mu.Unlock()
		for line := range strings.Lines(out) {
			if strings.Contains(line, s) {
				return strings.TrimSpace(line)
			}
		}
		if exited {
			t.Fatalf("the demo exited before logging %q", s)
		}
		select {
		case <-grown:
		case <-d.done:
			exited = true // look at the last lines once more
		case <-deadline:
			t.Fatalf("the demo did not log %q within %v", s, timeout)
		}
	}
}

// stop sends SIGINT and requires a clean exit.
func (d *demo) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the demo did not exit within 20s of SIGINT")
	}
	require.NoError(t, d.cmd.Wait(), "a clean exit on SIGINT")
}
