package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/internal/otlptest"
	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// handled collects what the package reports to otel.Handle.
var handled *testutil.ErrorSink

func TestMain(m *testing.M) {
	handled = testutil.InstallErrorSink()
	testutil.VerifyTestMain(m, handled)
}

// expectedVerdicts holds, for each incident kind that slows requests, a
// phrase that the diagnosis of one of its anomalous spans contains: the
// real cause, as package analysis words it.
var expectedVerdicts = map[kind]string{
	lockContention: "sync.Mutex",
	gcPressure:     "GC marking",
	slowDownstream: "waiting on the network",
	// The struck request waits for its fan-out; "waiting for a P" alone
	// also matches the requests the burst slowed without striking.
	cpuSaturation: "sync.WaitGroup in main.(*orders).scoreFraudDeep",
	queueBacklog:  "main.(*fulfilment).submit", // blocked in select on its job's channel
}

// TestDemo runs the demo binary against a real OTLP receiver, with load
// and incidents in quick succession, until every kind of incident has
// been caught: an anomalous server span linked to a snapshot, by the
// adaptive trigger (warmed up before the first incident, no threshold set)
// for the slow ones and the error trigger for the failed ones, with its
// attachment span whose diagnosis names the real cause. The anomaly's log
// line has its reason, verdict and snapshot URL; the URL serves the
// viewer's page to a browser and the trace to others; normal spans carry
// nothing; SIGINT exits cleanly.
func TestDemo(t *testing.T) {
	recv := otlptest.NewReceiver(t)
	bin := buildDemo(t)
	snapAddr := testutil.FreeAddr(t)
	incidentLog := filepath.Join(t.TempDir(), "incidents.jsonl")
	// The load runs until every kind is caught: each kind strikes every
	// 6 × 1.5s, so a kind whose snapshot was rate limited by a neighbour's,
	// or whose diagnosis the machine's load muddled, gets another chance.
	// The test stops the demo once it has them all.
	d := startDemo(t, bin,
		[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + recv.Endpoint(), "OTEL_BSP_SCHEDULE_DELAY=100"},
		"-addr", testutil.FreeAddr(t), "-inventory-addr", testutil.FreeAddr(t), "-snapshot-addr", snapAddr,
		"-store", t.TempDir(), "-rate", "25", "-duration", "100s",
		"-incident-every", "1500ms", "-snapshot-interval", "500ms", "-incident-log", incidentLog)

	ctx, cancel := context.WithTimeout(t.Context(), 110*time.Second)
	defer cancel()
	start := time.Now()
	spans, err := recv.WaitForSpans(ctx, func(s []otlptest.Span) bool {
		return len(caught(s)) == int(numKinds)
	})
	require.NoError(t, err, "every kind of incident is caught and diagnosed; got %v\ndiagnoses: %v",
		slices.Collect(maps.Keys(caught(recv.Spans()))), diagnoses(recv.Spans()))
	t.Logf("every kind caught %v after the start", time.Since(start).Round(100*time.Millisecond))

	// The snapshot handler still runs: for each kind's span, the URL
	// serves the snapshot's trace, and the span's page to a browser.
	catches := caught(spans)
	for k, c := range catches {
		assertTrace(t, c.url)
		assertPage(t, c.url)
		t.Logf("%s: %s", k, c.verdict)
	}
	d.stop(t) // flushes the spans and ends the log
	spans = recv.Spans()
	out := d.output()

	// Each one's log line names the span, and gives the reason, the
	// verdict and the URL.
	for k, c := range catches {
		line := logLine(out, c.url)
		if assert.NotEmpty(t, line, "the %s span's snapshot URL is logged", k) {
			assert.Contains(t, line, " "+strconv.Quote(c.span.Name)+" ", "the line names the span")
			assert.Contains(t, line, "("+c.reason, "the line gives the reason")
			assert.Contains(t, line, "verdict: "+c.verdict+"; trace "+c.span.TraceID, "the line gives the verdict")
		}
	}

	// The incident log names, for each kind's span, the kind whose
	// mechanism struck its request.
	logged := readIncidentLog(t, incidentLog)
	for k, c := range catches {
		if r, ok := logged[c.span.SpanID]; assert.True(t, ok, "the %s span is in the incident log", k) {
			assert.Equal(t, k, r.Kind, "the incident log's kind of the %s span", k)
			assert.Equal(t, byRequest, r.By, "the %s span's request was struck", k)
			assert.NotZero(t, r.Incident)
		}
	}

	warm := strings.Index(out, "adaptive trigger: warm after")
	first := strings.Index(out, "incident: ")
	require.NotEqual(t, -1, warm, "the adaptive trigger warms up")
	assert.Less(t, warm, first, "incidents start once the trigger is warm")

	// Every span, including those of anomalies that the shutdown cut
	// short (their diagnoses can take a while on a loaded machine, and
	// Shutdown has a deadline, so not every linked span need have its
	// attachment).
	attachments := map[string]int{} // by the span they link to
	for _, sp := range spans {
		if sp.Name == otelfr.AttachmentSpanName {
			require.Len(t, sp.Links, 1)
			attachments[sp.Links[0].SpanID]++
		}
	}
	reasons := map[string]bool{}
	for _, sp := range spans {
		if sp.Name == otelfr.AttachmentSpanName {
			continue
		}
		reason, _ := sp.Attributes[string(otelfr.SnapshotReasonKey)].(string)
		if reason == "" {
			for _, k := range []attribute.Key{otelfr.SnapshotIDKey, otelfr.SnapshotURLKey, spanprocessor.SnapshotSkippedKey} {
				assert.NotContains(t, sp.Attributes, string(k), "a normal span %q", sp.Name)
			}
			continue
		}
		reasons[reason] = true
		if reason == spanprocessor.ReasonAdaptiveLatency {
			assert.GreaterOrEqual(t, sp.EndTime.Sub(sp.StartTime), adaptiveFloor, "an adaptive anomaly %q lasts at least the floor", sp.Name)
		}
		if id, _ := sp.Attributes[string(otelfr.SnapshotIDKey)].(string); id != "" {
			assert.Equal(t, "http://"+snapAddr+"/snapshots/"+id+"?span="+sp.SpanID, sp.Attributes[string(otelfr.SnapshotURLKey)])
			assert.LessOrEqual(t, attachments[sp.SpanID], 1, "span %q has at most one attachment", sp.Name)
		}
	}
	assert.True(t, reasons[spanprocessor.ReasonAdaptiveLatency], "the adaptive trigger catches slow spans: %v", reasons)
	assert.True(t, reasons[spanprocessor.ReasonError], "the error trigger catches failed ones: %v", reasons)
	assert.False(t, reasons[spanprocessor.ReasonLatency], "no fixed threshold is set: %v", reasons)
}

// readIncidentLog returns the span lines of the incident log at path, by
// span ID, and checks that every line is a span or an incident.
func readIncidentLog(t *testing.T, path string) map[string]spanRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	spans := map[string]spanRecord{}
	incidents := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var typ struct{ Type string }
		require.NoError(t, json.Unmarshal([]byte(line), &typ), line)
		switch typ.Type {
		case "span":
			var r spanRecord
			require.NoError(t, json.Unmarshal([]byte(line), &r), line)
			spans[r.SpanID] = r
		case "incident":
			var r incidentRecord
			require.NoError(t, json.Unmarshal([]byte(line), &r), line)
			assert.False(t, r.End.Before(r.Start), line)
			incidents++
		default:
			t.Errorf("an incident log line of unknown type: %s", line)
		}
	}
	assert.NotZero(t, incidents, "the log holds the incidents")
	return spans
}

// catch is an anomalous server span that shows an incident was caught.
type catch struct {
	span                 otlptest.Span
	reason, url, verdict string
}

// caught returns, by incident kind, a server span named with the kind that
// is linked to a snapshot with the reason the kind calls for (error for
// failures, the adaptive latency trigger's for the others) and has its
// attachment span, whose verdict names the kind's real cause.
func caught(spans []otlptest.Span) map[string]catch {
	verdicts := map[string]string{} // by the span the attachment links to
	for _, sp := range spans {
		if sp.Name == otelfr.AttachmentSpanName && len(sp.Links) == 1 {
			verdicts[sp.Links[0].SpanID], _ = sp.Attributes[string(analysis.DiagnosisVerdictKey)].(string)
		}
	}
	kinds := map[string]catch{}
	for _, sp := range spans {
		url, _ := sp.Attributes[string(otelfr.SnapshotURLKey)].(string)
		verdict, attached := verdicts[sp.SpanID]
		if url == "" || !attached || sp.Name == otelfr.AttachmentSpanName {
			continue
		}
		reason, _ := sp.Attributes[string(otelfr.SnapshotReasonKey)].(string)
		list, _ := sp.Attributes[string(incidentsKey)].([]any)
		for _, name := range list {
			for k := range numKinds {
				want := spanprocessor.ReasonAdaptiveLatency
				if k == downstreamErrors {
					want = spanprocessor.ReasonError
				}
				if k.String() == name && reason == want && strings.Contains(verdict, expectedVerdicts[k]) {
					kinds[k.String()] = catch{span: sp, reason: reason, url: url, verdict: verdict}
				}
			}
		}
	}
	return kinds
}

// diagnoses returns the verdicts on the spans of each incident kind, to
// tell what went wrong when a kind is not caught.
func diagnoses(spans []otlptest.Span) map[string][]string {
	verdicts := map[string]string{}
	for _, sp := range spans {
		if sp.Name == otelfr.AttachmentSpanName && len(sp.Links) == 1 {
			verdicts[sp.Links[0].SpanID], _ = sp.Attributes[string(analysis.DiagnosisVerdictKey)].(string)
		}
	}
	out := map[string][]string{}
	for _, sp := range spans {
		list, _ := sp.Attributes[string(incidentsKey)].([]any)
		for _, k := range list {
			if v, ok := verdicts[sp.SpanID]; ok {
				out[k.(string)] = append(out[k.(string)], v)
			}
		}
	}
	return out
}

// TestDemoWithoutCollector runs the demo as `go run ./examples/demo` does,
// with no OTLP endpoint: snapshots are still taken, diagnosed, logged and
// served, and nothing reports failed exports.
func TestDemoWithoutCollector(t *testing.T) {
	bin := buildDemo(t)
	d := startDemo(t, bin, nil,
		"-addr", testutil.FreeAddr(t), "-inventory-addr", testutil.FreeAddr(t), "-snapshot-addr", testutil.FreeAddr(t),
		"-store", t.TempDir(), "-rate", "20", "-duration", "30s", "-incident-every", "1s")
	line := d.waitFor(t, "snapshot http://", 60*time.Second)
	assert.Contains(t, line, "verdict: ")
	url := line[strings.LastIndex(line, "http://"):]
	assertTrace(t, url)
	assertPage(t, url)
	d.stop(t)

	out := d.output()
	assert.Contains(t, out, "not exporting spans")
	assert.Contains(t, out, "anomaly trigger: adaptive")
	assert.Contains(t, out, "load: done")
	for _, bad := range []string{"connection refused", "traces export", "rpc error", "otlp"} {
		assert.NotContains(t, out, bad)
	}
}

// logLine returns the line of out that ends with the snapshot URL url.
func logLine(out, url string) string {
	for line := range strings.Lines(out) {
		if line = strings.TrimSpace(line); strings.HasSuffix(line, " snapshot "+url) {
			return line
		}
	}
	return ""
}

// assertPage fetches url as a browser does and checks that it is the
// viewer's span page, with a verdict.
func assertPage(t *testing.T, url string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/html")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/html", url)
	page, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Contains(t, string(page), `id="verdict"`, url)
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
	assert.NotEmpty(t, testutil.ReadTrace(t, data, url), url)
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

// TestServersSetOnlyReadHeaderTimeout pins "the example servers set only
// ReadHeaderTimeout": the demo's three servers, run in-process with their
// limits shortened, close a connection whose request body dribbles in and
// an idle keep-alive connection, and refuse oversized headers.
func TestServersSetOnlyReadHeaderTimeout(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "") // nothing to export to
	}
	saved := limits
	limits = serverLimits{
		readHeader:     200 * time.Millisecond,
		read:           300 * time.Millisecond,
		write:          time.Second,
		idle:           300 * time.Millisecond,
		maxHeaderBytes: 4 << 10,
	}
	t.Cleanup(func() { limits = saved })

	o := options{
		addr:          testutil.FreeAddr(t),
		inventoryAddr: testutil.FreeAddr(t),
		snapAddr:      testutil.FreeAddr(t),
		store:         t.TempDir(),
		minInterval:   time.Second,
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, o) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(15 * time.Second):
			t.Error("run did not return after its context ended")
		}
	}()
	for _, srv := range []struct{ name, addr, path string }{
		{"orders", o.addr, "/catalog"},
		{"inventory", o.inventoryAddr, "/reserve"},
		{"snapshots", o.snapAddr, "/snapshots/"},
	} {
		require.Eventually(t, func() bool {
			c, err := net.Dial("tcp", srv.addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		}, 10*time.Second, 10*time.Millisecond, "%s listens", srv.name)
		t.Run(srv.name, func(t *testing.T) {
			testutil.AssertDropsSlowClients(t, srv.addr, srv.path, limits.maxHeaderBytes, 3*time.Second)
		})
	}
}
