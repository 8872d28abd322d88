package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "gocloud.dev/blob/fileblob"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/internal/browsertest"
	"github.com/otelfr/otel-flightrecorder/internal/otlptest"
	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// build builds the quickstart and returns the binary's path.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "quickstart")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run())
	return bin
}

// TestQuickstart runs the quickstart as a user would, against a real OTLP
// receiver: a slow request produces a decorated span, an attachment span
// that is its child and links to it, and a URL serving a trace that
// parses; a fast request produces no snapshot; SIGINT flushes and exits.
func TestQuickstart(t *testing.T) {
	recv := otlptest.NewReceiver(t)
	bin := build(t)

	addr, snapAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cmd := exec.Command(bin, "-addr", addr, "-snapshot-addr", snapAddr, "-store", t.TempDir())
	cmd.Env = append(os.Environ(),
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+recv.Endpoint(),
		"OTEL_SERVICE_NAME=quickstart-test",
		"OTEL_BSP_SCHEDULE_DELAY=100",
	)
	var logs bytes.Buffer
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	logLines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logLines <- sc.Text()
		}
		close(logLines)
	}()
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 30*time.Second, 20*time.Millisecond, "the service listens")

	code, _ := httpGet(t, "http://"+addr+"/fast")
	require.Equal(t, http.StatusOK, code)
	start := time.Now()
	code, body := httpGet(t, "http://"+addr+"/slow")
	require.Equal(t, http.StatusOK, code)
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	assert.True(t, strings.HasPrefix(string(body), "slow "))

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	spans, err := recv.WaitForSpans(ctx, func(s []otlptest.Span) bool {
		var slow, att, fast bool
		for _, sp := range s {
			switch {
			case sp.Name == otelfr.AttachmentSpanName:
				att = true
			case sp.Attributes["url.path"] == "/slow":
				slow = true
			case sp.Attributes["url.path"] == "/fast":
				fast = true
			}
		}
		return slow && att && fast
	})
	require.NoError(t, err)

	var slow, fast, att otlptest.Span
	for _, sp := range spans {
		switch {
		case sp.Name == otelfr.AttachmentSpanName:
			att = sp
		case sp.Attributes["url.path"] == "/slow":
			slow = sp
		case sp.Attributes["url.path"] == "/fast":
			fast = sp
		}
	}
	id, _ := slow.Attributes[string(otelfr.SnapshotIDKey)].(string)
	url, _ := slow.Attributes[string(otelfr.SnapshotURLKey)].(string)
	require.NotEmpty(t, id, "the slow span carries the snapshot ID: %v", slow.Attributes)
	assert.Equal(t, "http://"+snapAddr+"/snapshots/"+id+"?span="+slow.SpanID, url, "the span page")
	assert.Equal(t, "latency", slow.Attributes[string(otelfr.SnapshotReasonKey)])
	assert.Equal(t, "quickstart-test", slow.Resource["service.name"])

	assert.NotContains(t, fast.Attributes, string(otelfr.SnapshotIDKey), "/fast produces no snapshot")
	assert.NotContains(t, fast.Attributes, string(spanprocessor.SnapshotSkippedKey))

	assert.Equal(t, slow.TraceID, att.TraceID, "the attachment is in the slow span's trace")
	assert.Equal(t, slow.SpanID, att.ParentSpanID, "and its child")
	require.Len(t, att.Links, 1)
	assert.Equal(t, slow.SpanID, att.Links[0].SpanID, "and links to it")
	assert.Equal(t, id, att.Attributes[string(otelfr.SnapshotIDKey)])
	assert.Equal(t, "quickstart-test", att.Resource["service.name"])
	verdict, _ := att.Attributes[string(analysis.DiagnosisVerdictKey)].(string)
	assert.Contains(t, verdict, "sync.Mutex", "the verdict names the real cause of /slow")
	assert.Contains(t, verdict, "refresh", "and who held the lock")
	t.Logf("verdict: %s", verdict)

	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/html")
	page, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	pageBody, err := io.ReadAll(page.Body)
	page.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, page.StatusCode)
	assert.Contains(t, string(pageBody), `<svg class="timeline"`, "a browser gets the span page")

	// What a user clicking the link in Jaeger sees: the verdict and the
	// goroutine timeline, in a real browser.
	t.Run("browser", func(t *testing.T) {
		ctx := browsertest.New(t, 60*time.Second)
		start := time.Now()
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(url),
			chromedp.WaitVisible("#verdict"),
			chromedp.WaitVisible("svg.timeline"),
		))
		shown := time.Since(start)
		pageVerdict, err := chromedp.Run(ctx, chromedp.Text("#verdict"))
		require.NoError(t, err)
		assert.Contains(t, pageVerdict, "sync.Mutex")
		assert.Positive(t, browsertest.Count(t, ctx, "svg.timeline g.lane"), "a lane per goroutine")
		browsertest.Screenshot(t, ctx, "viewer-span.png") // the README's
		t.Logf("span page: verdict and timeline shown %v after navigation", shown)
	})

	code, trace := httpGet(t, url)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, att.Attributes[string(otelfr.SnapshotSizeKey)], int64(len(trace)))
	assert.NotEmpty(t, testutil.ReadTrace(t, trace), "the URL serves a trace that parses")

	// The CLI on the downloaded file tells the same story.
	t.Run("otelfr analyze", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), id+".trace")
		require.NoError(t, os.WriteFile(file, trace, 0o600))
		cli := exec.Command("go", "run", "../../cmd/otelfr", "analyze", file, "--span", slow.TraceID+":"+slow.SpanID, "--json")
		cli.Stderr = os.Stderr
		out, err := cli.Output()
		require.NoError(t, err)
		var d struct {
			Verdict string `json:"verdict"`
			Status  string `json:"status"`
		}
		require.NoError(t, json.Unmarshal(out, &d), "%s", out)
		assert.Equal(t, "complete", d.Status)
		assert.Contains(t, d.Verdict, "sync.Mutex in main.(*inventory).read")
		assert.Contains(t, d.Verdict, "main.(*inventory).refresh")
		t.Logf("otelfr analyze: %s", d.Verdict)
	})

	code, _ = httpGet(t, "http://"+snapAddr+"/snapshots/")
	assert.Equal(t, http.StatusOK, code)

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, cmd.Wait(), "a clean exit on SIGINT")
	exited = true
	for l := range logLines {
		logs.WriteString(l + "\n")
	}
	assert.Contains(t, logs.String(), url, "the snapshot's URL is logged")
	assert.Contains(t, logs.String(), verdict, "and the verdict")
}

// TestServersSetOnlyReadHeaderTimeout pins "the example servers set only
// ReadHeaderTimeout": both of the quickstart's servers, run in-process with
// their limits shortened, close a connection whose request body dribbles
// in and an idle keep-alive connection, and refuse oversized headers.
func TestServersSetOnlyReadHeaderTimeout(t *testing.T) {
	recv := otlptest.NewReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+recv.Endpoint())
	saved := limits
	limits = serverLimits{
		readHeader:     200 * time.Millisecond,
		read:           300 * time.Millisecond,
		write:          time.Second,
		idle:           300 * time.Millisecond,
		maxHeaderBytes: 4 << 10,
	}
	t.Cleanup(func() { limits = saved })

	addr, snapAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, addr, snapAddr, t.TempDir()) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(15 * time.Second):
			t.Error("run did not return after its context ended")
		}
	}()
	for _, a := range []string{addr, snapAddr} {
		require.Eventually(t, func() bool {
			c, err := net.Dial("tcp", a)
			if err == nil {
				c.Close()
			}
			return err == nil
		}, 10*time.Second, 10*time.Millisecond, "%s listens", a)
	}

	t.Run("service", func(t *testing.T) {
		testutil.AssertDropsSlowClients(t, addr, "/fast", limits.maxHeaderBytes, 3*time.Second)
	})
	t.Run("snapshots", func(t *testing.T) {
		testutil.AssertDropsSlowClients(t, snapAddr, "/snapshots/", limits.maxHeaderBytes, 3*time.Second)
	})
}

// TestQuickstartBucketStore runs the quickstart with -store naming a
// bucket: the viewer serves the snapshot from the bucket store, and
// SIGINT drains the spool into the bucket before the process exits.
func TestQuickstartBucketStore(t *testing.T) {
	recv := otlptest.NewReceiver(t)
	bin := build(t)
	bucket := (&url.URL{Scheme: "file", Path: t.TempDir()}).String()

	addr, snapAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cmd := exec.Command(bin, "-addr", addr, "-snapshot-addr", snapAddr, "-store", bucket)
	cmd.Env = append(os.Environ(),
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+recv.Endpoint(),
		"OTEL_BSP_SCHEDULE_DELAY=100",
		"XDG_CACHE_HOME="+t.TempDir(), // the spool's parent
	)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	require.NoError(t, cmd.Start())
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	for _, a := range []string{addr, snapAddr} {
		require.Eventually(t, func() bool {
			c, err := net.Dial("tcp", a)
			if err == nil {
				c.Close()
			}
			return err == nil
		}, 30*time.Second, 20*time.Millisecond, "%s listens", a)
	}

	code, _ := httpGet(t, "http://"+addr+"/slow")
	require.Equal(t, http.StatusOK, code)
	var list []snapstore.Info
	require.Eventually(t, func() bool {
		code, body := httpGet(t, "http://"+snapAddr+"/snapshots/snapshots.json")
		return code == http.StatusOK && json.Unmarshal(body, &list) == nil && len(list) == 1
	}, 30*time.Second, 50*time.Millisecond, "the viewer lists the snapshot")
	id := list[0].ID
	code, trace := httpGet(t, "http://"+snapAddr+"/snapshots/"+id+".trace")
	require.Equal(t, http.StatusOK, code)
	assert.NotEmpty(t, testutil.ReadTrace(t, trace), "the viewer serves a trace that parses")

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, cmd.Wait(), "a clean exit on SIGINT: %s", &logs)
	exited = true
	assert.Contains(t, logs.String(), "snapshots in "+bucket)

	store, err := bucketstore.Open(t.Context(), bucket)
	require.NoError(t, err)
	defer store.Close()
	r, info, err := store.Open(t.Context(), id)
	require.NoError(t, err, "the snapshot is in the bucket after shutdown")
	defer r.Close()
	assert.Equal(t, int64(len(trace)), info.Size)
}
