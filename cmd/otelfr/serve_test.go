package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
)

// startLine is the line `otelfr serve` logs once it listens.
var startLine = regexp.MustCompile(`^otelfr serve: serving (http://127\.0\.0\.1:\d+/snapshots/) from (.+)$`)

// guard bounds every wait on the command, so that a hung server fails its
// test rather than the whole run; it is no assertion on how long anything
// takes.
const guard = 2 * time.Minute

// logLines reads a command's log, line by line, as it writes it.
type logLines struct {
	lines chan string
	all   bytes.Buffer // every line read, for failure messages
}

func readLines(r io.Reader) *logLines {
	l := &logLines{lines: make(chan string, 1000)}
	go func() {
		defer close(l.lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.lines <- sc.Text()
		}
	}()
	return l
}

// waitFor returns the submatches of the first line to match re, failing t
// if the log ends first.
func (l *logLines) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(guard)
	for {
		select {
		case line, ok := <-l.lines:
			if !ok {
				require.FailNow(t, "the log ended without a line matching "+re.String(), "log:\n%s", l.all.String())
			}
			l.all.WriteString(line + "\n")
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-timeout:
			require.FailNow(t, "no line matching "+re.String(), "log:\n%s", l.all.String())
		}
	}
}

// rest returns the lines not read yet, up to the end of the log.
func (l *logLines) rest() string {
	for line := range l.lines {
		l.all.WriteString(line + "\n")
	}
	return l.all.String()
}

// server is `otelfr serve` running in this process.
type server struct {
	base  string // http://127.0.0.1:PORT/snapshots/
	store string // as the start line shows it
	log   *logLines
	stop  func() int
}

// startServe runs `otelfr serve args...` in this process until the test
// ends or stop is called, which returns its exit status.
func startServe(t *testing.T, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- serve(ctx, args, w)
		w.Close()
	}()
	s := &server{log: readLines(r)}
	m := s.log.waitFor(t, startLine)
	s.base, s.store = m[1], m[2]
	stopped, status := false, 0
	s.stop = func() int {
		if !stopped {
			cancel()
			status, stopped = <-code, true
			s.log.rest()
		}
		return status
	}
	t.Cleanup(func() { s.stop() })
	return s
}

// get fetches u, as a browser when html, with the header pairs in hdr.
func get(t *testing.T, u string, html bool, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	require.NoError(t, err)
	if html {
		req.Header.Set("Accept", "text/html")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{Timeout: guard}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// replica is a process of the fleet that saves snapshots into a bucket.
type replica struct {
	service, instance string
	ids               []string
}

// writeBucket saves the recorded snapshot into a file:// bucket under
// each replica's IDs, as each replica does, the slow span linked to each,
// and returns the bucket's URL.
func writeBucket(t *testing.T, replicas ...replica) string {
	t.Helper()
	writeSnapshot(t)
	loc := "file://" + t.TempDir()
	for i, r := range replicas {
		res := resource.NewSchemaless(attribute.String("service.name", r.service),
			attribute.String("service.instance.id", r.instance), attribute.String("host.name", "node-"+r.instance))
		w, err := bucketstore.Open(t.Context(), loc, bucketstore.WithResource(res))
		require.NoError(t, err)
		for j, id := range r.ids {
			save(t, w, id, time.Duration(10*i+j)*time.Second)
		}
		require.NoError(t, w.Close())
	}
	return loc
}

// save saves the recorded snapshot as id, taken after from the epoch,
// with the slow span linked to it.
func save(t *testing.T, st snapstore.Store, id string, after time.Duration) {
	t.Helper()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).Add(after)
	_, err := st.Save(t.Context(), &otelfr.Snapshot{ID: id, Reason: "latency", Data: snapshot.data, TakenAt: at})
	require.NoError(t, err)
	slow := snapshot.slow
	require.NoError(t, st.AddSpans(t.Context(), id, []snapstore.SpanRef{{
		TraceID: slow.TraceID().String(), SpanID: slow.SpanID().String(), Name: "slow", Reason: "latency",
	}}))
}

var rowRe = regexp.MustCompile(`<td><a href="([A-Z0-9]+)">`)

func rows(body string) []string {
	var ids []string
	for _, m := range rowRe.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// TestServeBucket serves a fleet's bucket: every replica's snapshots, a
// filter by service and instance, the span pages, and the health check.
func TestServeBucket(t *testing.T) {
	loc := writeBucket(t,
		replica{"checkout", "a1", []string{"CHECKOUT1", "CHECKOUT2"}},
		replica{"orders", "b1", []string{"ORDERS1"}})
	s := startServe(t, "-store", loc, "-addr", "127.0.0.1:0")
	assert.Equal(t, loc, s.store)

	resp, body := get(t, s.base, true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []string{"ORDERS1", "CHECKOUT2", "CHECKOUT1"}, rows(body), "every replica's, newest first")
	assert.Contains(t, body, `<a href="?service=orders">orders</a>`)
	assert.Contains(t, body, `host node-b1`)

	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"?service=orders", []string{"ORDERS1"}},
		{"?service=checkout", []string{"CHECKOUT2", "CHECKOUT1"}},
		{"?instance=a1", []string{"CHECKOUT2", "CHECKOUT1"}},
		{"?service=orders&instance=a1", nil},
	} {
		t.Run(tt.query, func(t *testing.T) {
			_, body := get(t, s.base+tt.query, true)
			assert.Equal(t, tt.want, rows(body))
			_, data := get(t, s.base+"snapshots.json"+tt.query, false)
			var list []snapstore.Info
			require.NoError(t, json.Unmarshal([]byte(data), &list))
			assert.Len(t, list, len(tt.want))
		})
	}

	resp, body = get(t, s.base+"ORDERS1?span="+snapshot.slow.SpanID().String(), true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, `id="verdict"`)
	assert.Contains(t, body, "sync.Mutex", "diagnosed from the bucket's trace")
	assert.Contains(t, body, "orders, instance b1, host node-b1")

	resp, body = get(t, s.base+"NOTUPLOADED", true)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Contains(t, body, "not yet uploaded from the replica that took it")

	resp, body = get(t, s.base+"CHECKOUT1.trace", false)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, snapshot.data, []byte(body))

	resp, body = get(t, strings.TrimSuffix(s.base, "snapshots/")+"healthz", false)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok\n", body)

	// / leads to the viewer.
	root := strings.TrimSuffix(s.base, "snapshots/")
	resp, body = get(t, root, true)
	assert.Equal(t, s.base, resp.Request.URL.String())
	assert.Equal(t, []string{"ORDERS1", "CHECKOUT2", "CHECKOUT1"}, rows(body))
	resp, _ = get(t, root+"nothing-here", true)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	assert.Equal(t, 0, s.stop())
	assert.Contains(t, s.log.all.String(), "otelfr serve: stopped")
}

// TestServeDirectory serves the directory a live process writes, and
// removes nothing from it.
func TestServeDirectory(t *testing.T) {
	writeSnapshot(t)
	dir := t.TempDir()
	w, err := snapstore.NewDirStore(dir)
	require.NoError(t, err)
	save(t, w, "FIRST", 0)
	// What the writer leaves mid-save: serve must not take it for its own
	// leftovers.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".tmp-42"), []byte("half a save"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "HALF.trace"), []byte("a trace before its description"), 0o600))

	t.Setenv(bucketstore.EnvStore, dir) // the default for -store
	s := startServe(t, "-addr", "127.0.0.1:0")
	assert.Equal(t, dir, s.store)
	_, body := get(t, s.base, true)
	assert.Equal(t, []string{"FIRST"}, rows(body))
	assert.FileExists(t, filepath.Join(dir, ".tmp-42"), "serve removes nothing")
	assert.FileExists(t, filepath.Join(dir, "HALF.trace"))

	save(t, w, "SECOND", time.Second) // removes HALF.trace, as the writer may
	_, body = get(t, s.base, true)
	assert.Equal(t, []string{"SECOND", "FIRST"}, rows(body), "what the writer saves since")
	resp, body := get(t, s.base+"SECOND?span="+snapshot.slow.SpanID().String(), true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "sync.Mutex")

	health := strings.TrimSuffix(s.base, "snapshots/") + "healthz"
	resp, _ = get(t, health, false)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// A store that fails: its directory is gone.
	require.NoError(t, os.RemoveAll(dir))
	resp, body = get(t, health, false)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, body, "store unavailable: ")
	assert.Contains(t, body, "no such file or directory")
	get(t, health, false)
	require.NoError(t, os.Mkdir(dir, 0o700))
	resp, _ = get(t, health, false)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "and recovers")

	assert.Equal(t, 0, s.stop())
	log := s.log.all.String()
	assert.Equal(t, 1, strings.Count(log, "health: the store fails"), "once per failing run:\n%s", log)
	assert.Contains(t, log, "health: the store answers again")
}

// TestServeHealthOfAnUnreachableBucket: a bucket that does not answer
// fails the health check, and only it: the pages ask for authentication.
func TestServeHealthOfAnUnreachableBucket(t *testing.T) {
	// Credentials from the environment only: the AWS SDK must look for
	// none on the network (the instance metadata service).
	t.Setenv("AWS_ACCESS_KEY_ID", "otelfr-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "otelfr-test-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	q := url.Values{"endpoint": {"http://" + testutil.FreeAddr(t)}, "region": {"us-east-1"}, "use_path_style": {"true"}}
	s := startServe(t, "-store", "s3://otelfr-down?"+q.Encode(), "-addr", "127.0.0.1:0", "-token", "tok")

	resp, body := get(t, strings.TrimSuffix(s.base, "snapshots/")+"healthz", false)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, body, "store unavailable: ")
	resp, _ = get(t, s.base, true)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = get(t, s.base, true, "Authorization", "Bearer tok")
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, "the index cannot list the bucket")
	require.Len(t, handled.Take(), 1, "the viewer reports the store's failure")
	assert.Equal(t, 0, s.stop())
}

func TestServeAuth(t *testing.T) {
	loc := writeBucket(t, replica{"checkout", "a1", []string{"CHECKOUT1"}})
	tests := []struct {
		name string
		args []string
		env  map[string]string
		good []string // header pairs that authenticate
		bad  []string // header pairs that do not
	}{
		{"bearer flag", []string{"-token", "s3cret"}, nil,
			[]string{"Authorization", "Bearer s3cret"}, []string{"Authorization", "Bearer nope"}},
		{"bearer env", nil, map[string]string{envServeToken: "s3cret"},
			[]string{"Authorization", "Bearer s3cret"}, []string{"Authorization", "Basic b3BzOnMzY3JldA=="}},
		{"basic flag", []string{"-basic-auth", "ops:pa:ss"}, nil,
			[]string{"Authorization", "Basic b3BzOnBhOnNz"}, []string{"Authorization", "Basic b3BzOm5vcGU="}},
		{"basic env", nil, map[string]string{envServeBasicAuth: "ops:pa:ss"},
			[]string{"Authorization", "Basic b3BzOnBhOnNz"}, []string{"Authorization", "Bearer ops:pa:ss"}},
		{"flag over env", []string{"-token", "s3cret"}, map[string]string{envServeBasicAuth: "ops:pa:ss"},
			[]string{"Authorization", "Bearer s3cret"}, []string{"Authorization", "Basic b3BzOnBhOnNz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envServeToken, "")
			t.Setenv(envServeBasicAuth, "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			s := startServe(t, append([]string{"-store", loc, "-addr", "127.0.0.1:0"}, tt.args...)...)
			for _, u := range []string{s.base, s.base + "CHECKOUT1", s.base + "CHECKOUT1.trace", s.base + "snapshots.json"} {
				resp, body := get(t, u, true)
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, u)
				assert.NotContains(t, body, "CHECKOUT1", u)
				resp, _ = get(t, u, true, tt.bad...)
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, u)
				resp, _ = get(t, u, true, tt.good...)
				assert.Equal(t, http.StatusOK, resp.StatusCode, u)
			}
			resp, body := get(t, strings.TrimSuffix(s.base, "snapshots/")+"healthz", false)
			assert.Equal(t, http.StatusOK, resp.StatusCode, "the health check needs no authentication")
			assert.Equal(t, "ok\n", body)
			assert.Equal(t, 0, s.stop())
		})
	}
}

func TestServeUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		code    int
		message string
	}{
		{"no store", nil, nil, 2, "no store: give -store DIR or -store URL, or set OTELFR_STORE"},
		{"an argument", []string{"-store", dir, "extra"}, nil, 2, `unexpected argument "extra"`},
		{"all interfaces", []string{"-store", dir, "-addr", ":0"}, nil, 2, "refusing to serve snapshots on :0 without authentication"},
		{"any address", []string{"-store", dir, "-addr", "0.0.0.0:0"}, nil, 2, "behind a proxy that authenticates every request and give -insecure-no-auth"},
		{"a host name", []string{"-store", dir, "-addr", "snapshots.example.com:0"}, nil, 2, "it is not a loopback address"},
		{"no port", []string{"-store", dir, "-addr", "127.0.0.1"}, nil, 2, "-addr: address 127.0.0.1: missing port"},
		{"two kinds of auth", []string{"-store", dir, "-token", "t", "-basic-auth", "u:p"}, nil, 2, "give one of -token and -basic-auth"},
		{"two kinds of auth in env", []string{"-store", dir}, map[string]string{envServeToken: "t", envServeBasicAuth: "u:p"}, 2, "give one of -token and -basic-auth"},
		{"auth and no auth", []string{"-store", dir, "-token", "t", "-insecure-no-auth"}, nil, 2, "-insecure-no-auth asks for no authentication"},
		{"basic without password", []string{"-store", dir, "-basic-auth", "ops"}, nil, 2, "want USER:PASSWORD"},
		{"basic with an empty password", []string{"-store", dir, "-basic-auth", "ops:"}, nil, 2, "want USER:PASSWORD"},
		{"bad flag", []string{"-nope"}, nil, 2, "flag provided but not defined: -nope"},
		{"missing directory", []string{"-store", filepath.Join(dir, "nope")}, nil, 1, "opening store directory"},
		{"not a directory", []string{"-store", writeSnapshot(t)}, nil, 1, "is not a directory"},
		{"a driver not linked", []string{"-store", "nosuch://bucket"}, nil, 1, "available schemes: azblob, file, gs, s3"},
		{"not a URL", []string{"-store", "s3://bu cket/%zz"}, nil, 1, "not a bucket URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(bucketstore.EnvStore, "")
			t.Setenv(envServeToken, "")
			t.Setenv(envServeBasicAuth, "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			code := serve(t.Context(), tt.args, &stderr)
			assert.Equal(t, tt.code, code, stderr.String())
			assert.Contains(t, stderr.String(), tt.message)
			assert.NotContains(t, stderr.String(), "serving", "nothing listened")
		})
	}

	code, out, errOut := runCmd("serve", "-h")
	assert.Equal(t, 0, code)
	assert.Empty(t, out)
	for _, flag := range []string{"-store", "-addr", "-token", "-basic-auth", "-insecure-no-auth", "OTELFR_SERVE_TOKEN", `default "127.0.0.1:8081"`} {
		assert.Contains(t, errOut, flag)
	}
}

// process is the command run as a process of its own.
type process struct {
	cmd  *exec.Cmd
	log  *logLines
	base string
}

// startProcess runs the command with args in a process of its own, with
// env added to this one's, and waits for its start line.
func startProcess(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(append(os.Environ(), envRunMain+"=1"), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &process{cmd: cmd, log: readLines(stderr)}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			p.log.rest()
			_ = cmd.Wait()
		}
	})
	p.base = p.log.waitFor(t, startLine)[1]
	return p
}

// wait waits for the process to exit, and returns its status and log.
func (p *process) wait(t *testing.T) (int, string) {
	t.Helper()
	log := p.log.rest()
	err := p.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !assert.ErrorAs(t, err, &exit) {
		return -1, log
	}
	return p.cmd.ProcessState.ExitCode(), log
}

// TestServeGracefulShutdown signals the command while it sends a snapshot
// to a client that has stopped reading: the download completes, whole, and
// the command exits 0.
func TestServeGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	w, err := snapstore.NewDirStore(dir)
	require.NoError(t, err)
	// Larger than the socket buffers on both sides, so that the server is
	// still writing it while the client waits.
	big := bytes.Repeat([]byte("otelfr snapshot "), 64<<20/16)
	want := sha256.Sum256(big)
	_, err = w.Save(t.Context(), &otelfr.Snapshot{ID: "BIG", Data: big, TakenAt: time.Now()})
	require.NoError(t, err)

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p := startProcess(t, []string{bucketstore.EnvStore + "=" + dir}, "serve", "-addr", "127.0.0.1:0")
			client := &http.Client{Timeout: guard}
			defer client.CloseIdleConnections()
			resp, err := client.Get(p.base + "BIG.trace")
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			head := make([]byte, 1<<10)
			_, err = io.ReadFull(resp.Body, head)
			require.NoError(t, err)

			require.NoError(t, p.cmd.Process.Signal(sig))
			p.log.waitFor(t, regexp.MustCompile(`^otelfr serve: shutting down: finishing the requests in flight`))
			rest, err := io.ReadAll(resp.Body)
			require.NoError(t, err, "the download in flight completes")
			got := sha256.Sum256(append(head, rest...))
			assert.Equal(t, fmt.Sprintf("%x", want), fmt.Sprintf("%x", got), "whole")

			code, log := p.wait(t)
			assert.Equal(t, 0, code, log)
			assert.Contains(t, log, "otelfr serve: stopped")
			assert.NotContains(t, log, "closing the connections still busy")
		})
	}
}

// TestServeRealS3 runs the command as the end-to-end test does, over a
// real S3-compatible server: the bucket URL with its endpoint, the
// credentials in the AWS_* variables.
func TestServeRealS3(t *testing.T) {
	s3 := testutil.StartS3(t)
	for _, kv := range s3.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	writeSnapshot(t)
	w, err := bucketstore.Open(t.Context(), s3.URL(), bucketstore.WithResource(resource.NewSchemaless(
		attribute.String("service.name", "checkout"), attribute.String("service.instance.id", "a1"))))
	require.NoError(t, err)
	save(t, w, "INS3", 0)
	require.NoError(t, w.Close())

	p := startProcess(t, s3.Env(), "serve", "-store", s3.URL(), "-addr", "127.0.0.1:0")
	resp, body := get(t, strings.TrimSuffix(p.base, "snapshots/")+"healthz", false)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	_, body = get(t, p.base+"?service=checkout", true)
	assert.Equal(t, []string{"INS3"}, rows(body))
	_, body = get(t, p.base+"INS3?span="+snapshot.slow.SpanID().String(), true)
	assert.Contains(t, body, "sync.Mutex")

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	code, log := p.wait(t)
	assert.Equal(t, 0, code, log)
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/otelfr":   "/var/lib/otelfr",
		"file:///tmp/snaps": "file:///tmp/snaps",
		"s3://b?region=us-east-1&use_path_style=true": "'s3://b?region=us-east-1&use_path_style=true'",
		"/tmp/it's here": `'/tmp/it'\''s here'`,
		"":               "''",
	} {
		assert.Equal(t, want, shellQuote(in), "%q", in)
	}
}

func TestAnalyzeFromStore(t *testing.T) {
	writeSnapshot(t)
	dir := t.TempDir()
	d, err := snapstore.NewDirStore(dir)
	require.NoError(t, err)
	save(t, d, "INDIR", 0)
	bucket := writeBucket(t, replica{"checkout", "a1", []string{"INBUCKET"}})
	slow := snapshot.slow.SpanID().String()

	for _, tt := range []struct{ store, id string }{{dir, "INDIR"}, {bucket, "INBUCKET"}} {
		t.Run(tt.id, func(t *testing.T) {
			code, out, errOut := runCmd("analyze", "-store", tt.store, tt.id, "--span", slow)
			require.Equal(t, 0, code, errOut)
			assert.True(t, strings.HasPrefix(out, "span "+slow+` "slow" in trace `+snapshot.slow.TraceID().String()+": complete\n"), out)
			assert.Regexp(t, `\nverdict: \d+% of \d+ ms blocked on sync.Mutex in `, out)

			code, out, errOut = runCmd("analyze", tt.id, "-store", tt.store)
			require.Equal(t, 0, code, errOut)
			assert.Contains(t, out, "snapshot "+tt.id+": ")
			assert.Contains(t, out, slow)

			code, out, errOut = runCmd("analyze", "-store", tt.store, "NOSUCH")
			assert.Equal(t, 1, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, "snapshot NOSUCH is not in ")
			assert.Contains(t, errOut, "not yet uploaded from the replica that took it")

			code, _, errOut = runCmd("analyze", "-store", tt.store, tt.id, "--span", "0123456789abcdef")
			assert.Equal(t, 1, code)
			assert.Contains(t, errOut, "(run `otelfr analyze -store "+shellQuote(tt.store)+" "+tt.id+"` to list the spans it holds)")
		})
	}

	for _, tt := range []struct {
		name    string
		args    []string
		code    int
		message string
	}{
		{"not an ID", []string{"analyze", "-store", dir, "../etc/passwd"}, 2, "../etc/passwd is not a snapshot ID"},
		{"no ID", []string{"analyze", "-store", dir}, 2, "want one SNAPSHOT, have 0"},
		{"missing store", []string{"analyze", "-store", filepath.Join(dir, "nope"), "INDIR"}, 1, "opening the store"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCmd(tt.args...)
			assert.Equal(t, tt.code, code)
			assert.Contains(t, errOut, tt.message)
		})
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "analyze wrote nothing into the directory")
}
