package testutil

import (
	"bytes"
	cryptorand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvWeedBin names the SeaweedFS binary StartS3 runs. scripts/seaweedfs.sh
// builds it once and prints its path.
const EnvWeedBin = "OTELFR_WEED_BIN"

// How long StartS3 and Start wait for the bucket to answer, and Stop for
// the process to exit before it is killed. A cold start takes about 4s;
// the bound leaves room for a machine busy with other builds. A stop
// usually takes 1.5s, but weed waits for connections still open: up to 10s
// for its gateways, 15s each for its S3 and filer HTTP servers, and 30s
// for its volume server's (seen about once in ten runs, with no request in
// flight).
const (
	s3StartTimeout = 45 * time.Second
	s3StopTimeout  = 90 * time.Second
	s3SlowStop     = 5 * time.Second
)

// The ports a server listens on are drawn from below Linux's ephemeral
// range (32768 and up), where no outgoing connection can take one while
// the server is stopped between Stop and Start.
const (
	s3PortLow  = 20000
	s3PortHigh = 32768
)

// S3Server is a real S3-compatible server, SeaweedFS's `weed mini`, run as
// a process of its own on loopback, with one bucket. Every port it listens
// on is its own, so that several run side by side.
//
// Requests signed with AccessKeyID and SecretAccessKey (AWS Signature
// Version 4, path-style, any region) may do anything; a request signed
// with any other key is refused. Unsigned requests may read and list, and
// nothing else, so that a test can check what a store wrote with plain
// net/http while the store itself must sign as it would against AWS.
type S3Server struct {
	// Endpoint is the S3 API's base URL, http://127.0.0.1:PORT. Objects are
	// at Endpoint/Bucket/KEY (path-style).
	Endpoint string
	// Bucket exists when StartS3 returns.
	Bucket string
	// Region is what clients should sign for. The server accepts any.
	Region string
	// AccessKeyID and SecretAccessKey are the credentials of the one
	// identity allowed to write. They are random for each server.
	AccessKeyID, SecretAccessKey string

	t     testing.TB
	bin   string
	root  string   // the server's working directory and HOME
	args  []string // fixed at StartS3: the same directory and ports each Start
	ports []int    // what args give it
	out   lockedBuffer

	mu   sync.Mutex
	proc *weedProcess // nil while stopped
}

// weedProcess is one run of the server.
type weedProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited
	err  error         // its exit status, once done
}

// StartS3 starts an S3Server with its data in a directory of t's, and
// returns once the bucket answers. t's cleanup stops it.
//
// Without EnvWeedBin set, StartS3 skips the test, or fails it when the CI
// variable is set, so that CI never passes by skipping.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	bin := os.Getenv(EnvWeedBin)
	if bin == "" {
		const how = EnvWeedBin + " is not set: run `export " + EnvWeedBin +
			"=$(scripts/seaweedfs.sh)`, which builds SeaweedFS once (several minutes) and prints its path"
		if os.Getenv("CI") != "" {
			t.Fatal(how)
		}
		t.Skip(how)
	}
	root := t.TempDir()
	dataDir, logDir := filepath.Join(root, "data"), filepath.Join(root, "log")
	for _, d := range []string{dataDir, logDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s := &S3Server{
		Bucket:          "otelfr-test",
		Region:          "us-east-1",
		AccessKeyID:     "otelfr" + randomHex(8),
		SecretAccessKey: randomHex(20),
		t:               t,
		bin:             bin,
		root:            root,
	}
	config := filepath.Join(root, "s3.json")
	if err := os.WriteFile(config, s.identities(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("weed output (last 8 KiB):\n%s", tail(s.out.String(), 8<<10))
			// Its latest log, which weed links to as weed*.INFO.
			if logs, _ := filepath.Glob(filepath.Join(logDir, "*.INFO")); len(logs) > 0 {
				b, _ := os.ReadFile(logs[0])
				t.Logf("weed log %s (last 16 KiB):\n%s", logs[0], tail(string(b), 16<<10))
			}
		}
	})

	// A port found free can be taken before weed binds it: then weed exits
	// at once, and another set of ports is tried.
	var err error
	for range 3 {
		s.ports, err = loopbackPorts(10)
		if err != nil {
			break
		}
		ports := s.ports
		s.Endpoint = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[6]))
		s.args = []string{
			"-logdir=" + logDir,
			"mini",
			"-dir=" + dataDir,
			"-ip=127.0.0.1",
			"-ip.bind=127.0.0.1",
			"-master.port=" + strconv.Itoa(ports[0]),
			"-master.port.grpc=" + strconv.Itoa(ports[1]),
			"-volume.port=" + strconv.Itoa(ports[2]),
			"-volume.port.grpc=" + strconv.Itoa(ports[3]),
			"-filer.port=" + strconv.Itoa(ports[4]),
			"-filer.port.grpc=" + strconv.Itoa(ports[5]),
			"-s3.port=" + strconv.Itoa(ports[6]),
			"-s3.port.grpc=" + strconv.Itoa(ports[7]),
			"-admin.port=" + strconv.Itoa(ports[8]),
			"-admin.port.grpc=" + strconv.Itoa(ports[9]),
			// What the tests do not use, and would listen on fixed ports.
			"-webdav=false",
			"-s3.port.iceberg=0",
			"-s3.port.lance=0",
			"-admin.port.legacy=0",
			"-admin.ui=false",
			"-master.telemetry=false",
			"-s3.config=" + config,
			"-bucket=" + s.Bucket,
		}
		// A port taken meanwhile, or, about once in 60 starts here, a
		// weed whose services never come up: either way, start afresh.
		if err = s.start(); err == nil {
			break
		}
		t.Logf("weed did not start (%v); trying again on new ports", err)
	}
	if err != nil {
		t.Fatalf("starting weed: %v", err)
	}
	return s
}

// URL is the bucket's URL in gocloud.dev/blob's form, for a store that
// takes one. The credentials go separately: see Env.
func (s *S3Server) URL() string {
	q := url.Values{"endpoint": {s.Endpoint}, "region": {s.Region}, "use_path_style": {"true"}}
	return "s3://" + s.Bucket + "?" + q.Encode()
}

// Env is the environment a client process needs to sign its requests, in
// the AWS SDKs' variables.
func (s *S3Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretAccessKey,
		"AWS_REGION=" + s.Region,
	}
}

// Start starts the server again after Stop, on the same directory and
// ports, and returns once the bucket answers: what was written before Stop
// is there. It is a no-op while the server runs. Call it from the test's
// goroutine: it fails t.
func (s *S3Server) Start() {
	s.t.Helper()
	err := s.start()
	if err != nil {
		// A weed whose services never come up, about once in 60 starts:
		// once more, on the same directory and ports.
		s.t.Logf("weed did not start again (%v); trying once more", err)
		err = s.start()
	}
	if err != nil {
		s.t.Fatalf("starting weed again: %v", err)
	}
}

// Stop stops the server: SIGTERM, then SIGKILL if it has not exited
// within 90s, which fails t. The S3 port refuses connections within a
// moment of SIGTERM; Stop returns once the process has exited, which can
// take 30s (see s3StopTimeout), and nothing of it listens. It is a no-op
// while the server is stopped.
func (s *S3Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			s.t.Errorf("weed exited with %v on SIGTERM", p.err)
		}
		// weed's output ends with how long each part took to stop.
		if d := time.Since(start); d > s3SlowStop {
			s.t.Logf("weed took %v to stop:\n%s", d.Round(time.Millisecond), tail(s.out.String(), 1<<10))
		}
	case <-time.After(s3StopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		s.t.Errorf("weed did not exit within %v of SIGTERM, and was killed", s3StopTimeout)
	}
	s.removeSockets()
}

// removeSockets removes what a killed weed leaves in /tmp: it names a Unix
// socket after each service's port, and removes them only when it exits
// cleanly once fully started.
func (s *S3Server) removeSockets() {
	for _, port := range s.ports {
		paths, _ := filepath.Glob("/tmp/seaweedfs-*-" + strconv.Itoa(port) + ".sock")
		for _, p := range paths {
			_ = os.Remove(p)
		}
	}
}

func (s *S3Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}
	cmd := exec.Command(s.bin, s.args...)
	// Its own working directory and HOME, where weed looks for its *.toml
	// configuration, and none of the variables it or an AWS SDK would read.
	cmd.Dir = s.root
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name != "HOME" && !strings.HasPrefix(name, "AWS_") && !strings.HasPrefix(name, "S3_") && !strings.HasPrefix(name, "WEED_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+s.root)
	fmt.Fprintf(&s.out, "$ %s %s\n", s.bin, strings.Join(s.args, " "))
	from := s.out.Len()
	cmd.Stdout, cmd.Stderr = &s.out, &s.out
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &weedProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := s.waitReady(p, from); err != nil {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		s.removeSockets()
		return err
	}
	s.proc = p
	return nil
}

// weedReady ends the banner weed mini prints once every service has
// started and the bucket exists.
const weedReady = "Press Ctrl+C to stop all components"

// waitReady waits until weed has written weedReady since offset from of
// its output, and the bucket answers an unsigned HEAD. S3 answers before
// the admin service has started: a weed stopped then leaves a socket
// behind in /tmp.
func (s *S3Server) waitReady(p *weedProcess, from int) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(s3StartTimeout)
	for {
		notYet := s.notReady(client, from)
		if notYet == "" {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("weed exited (%v) before it was ready", p.err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("weed was not ready within %v: %s", s3StartTimeout, notYet)
		}
	}
}

// notReady says what waitReady still waits for, or "" for nothing.
func (s *S3Server) notReady(client *http.Client, from int) string {
	if !strings.Contains(s.out.String()[from:], weedReady) {
		return fmt.Sprintf("it has not written %q", weedReady)
	}
	resp, err := client.Head(s.Endpoint + "/" + s.Bucket)
	if err != nil {
		return err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "HEAD " + s.Endpoint + "/" + s.Bucket + ": " + resp.Status
	}
	return ""
}

// identities is the -s3.config file: one identity that may do anything,
// and anonymous requests that may read.
func (s *S3Server) identities() []byte {
	type credential struct {
		AccessKey string `json:"accessKey"`
		SecretKey string `json:"secretKey"`
	}
	type identity struct {
		Name        string       `json:"name"`
		Credentials []credential `json:"credentials,omitempty"`
		Actions     []string     `json:"actions"`
	}
	b, err := json.Marshal(struct {
		Identities []identity `json:"identities"`
	}{[]identity{
		{Name: "otelfr", Credentials: []credential{{s.AccessKeyID, s.SecretAccessKey}}, Actions: []string{"Admin", "Read", "Write", "List", "Tagging"}},
		{Name: "anonymous", Actions: []string{"Read", "List"}},
	}})
	if err != nil {
		panic(err) // static types: cannot fail
	}
	return b
}

// loopbackPorts returns n distinct ports in [s3PortLow, s3PortHigh) that
// were free on 127.0.0.1 a moment ago.
func loopbackPorts(n int) ([]int, error) {
	tried := make(map[int]bool)
	var ports []int
	for len(ports) < n {
		if len(tried) > 1000 {
			return nil, errors.New("no free loopback ports below the ephemeral range")
		}
		p := s3PortLow + rand.IntN(s3PortHigh-s3PortLow)
		if tried[p] {
			continue
		}
		tried[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		ports = append(ports, p)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = cryptorand.Read(b)
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// lockedBuffer is a bytes.Buffer that a process's output goroutines and
// the test may use at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
