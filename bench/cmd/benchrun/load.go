package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// serverProc is a running "benchrun server" child process.
type serverProc struct {
	cmd      *exec.Cmd
	app, ctl string // base URLs
	done     chan error
}

// startServer starts the service in a child process and waits until it
// listens. The child is killed if it does not answer /quit.
func startServer(args ...string) (*serverProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"server"}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serverProc{cmd: cmd, done: make(chan error, 1)}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "READY "); ok {
				for _, f := range strings.Fields(rest) {
					k, v, _ := strings.Cut(f, "=")
					switch k {
					case "app":
						p.app = "http://" + v
					case "ctl":
						p.ctl = "http://" + v
					}
				}
				ready <- nil
			}
		}
		ready <- fmt.Errorf("server exited before listening")
		p.done <- cmd.Wait()
	}()
	select {
	case err := <-ready:
		if err != nil {
			return nil, err
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("server did not start in 30s")
	}
	return p, nil
}

// stop asks the server to shut down and waits for it, killing it (by its
// PID, which we started) if it takes longer than 20s.
func (p *serverProc) stop() {
	_ = p.post("/quit")
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

var ctlClient = &http.Client{Timeout: 60 * time.Second}

func (p *serverProc) get(path string, v any) error {
	resp, err := ctlClient.Get(p.ctl + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (p *serverProc) post(path string) error {
	resp, err := ctlClient.Post(p.ctl+path, "text/plain", nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// cpu returns the server's user+system CPU time so far.
func (p *serverProc) cpu() (time.Duration, error) {
	var ru map[string]int64
	if err := p.get("/rusage", &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru["utime_us"]+ru["stime_us"]) * time.Microsecond, nil
}

func (p *serverProc) mem() (memStats, error) {
	var m memStats
	err := p.get("/mem", &m)
	return m, err
}

// loadSpec is a bounded, paced load: Rate requests per second for
// Duration (so at most Rate×Duration requests), at most MaxInflight at a
// time. Every FailEvery-th request (0: none) asks for an injected error,
// and so is an anomaly for the error trigger.
type loadSpec struct {
	URL         string // base URL; paths are added
	Prefix      string // path prefix, e.g. "/c20" for the second pipeline
	Rate        int
	Duration    time.Duration
	MaxInflight int
	FailEvery   int
	NoRecord    bool // keep no per-request records (a background load)
	// Special, if set, is called for request i and may return a path that
	// replaces the normal one (and whether it is an injected anomaly).
	Special func(i int) (path string, anomaly bool, ok bool)
}

// reqRecord is one request as the client saw it (wall clock, unix ns, so
// that it compares with the server's timestamps on the same machine).
type reqRecord struct {
	Start, End int64
	Anomaly    bool
	OK         bool
}

func (r reqRecord) latency() time.Duration { return time.Duration(r.End - r.Start) }

var loadClient = &http.Client{
	Timeout: 30 * time.Second,
	Transport: &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
	},
}

// runLoad runs spec and returns every request's record. It stops by itself
// after Duration (plus the time the requests in flight take).
func runLoad(ctx context.Context, spec loadSpec) []reqRecord {
	if spec.MaxInflight <= 0 {
		spec.MaxInflight = 64
	}
	spec.Duration = min(spec.Duration, 30*time.Minute) // bounded, whatever the caller says
	total := int(float64(spec.Rate) * spec.Duration.Seconds())
	type job struct {
		i    int
		path string
		anom bool
	}
	jobs := make(chan job, spec.MaxInflight)
	var recs []reqRecord
	if !spec.NoRecord {
		recs = make([]reqRecord, total)
	}
	var wg sync.WaitGroup
	for range spec.MaxInflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				start := time.Now()
				ok := false
				resp, err := loadClient.Get(spec.URL + j.path)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ok = resp.StatusCode == http.StatusOK || j.anom
				}
				if recs == nil {
					continue
				}
				recs[j.i] = reqRecord{Start: start.UnixNano(), End: time.Now().UnixNano(), Anomaly: j.anom, OK: ok}
			}
		}()
	}
	interval := time.Second / time.Duration(max(spec.Rate, 1))
	begin := time.Now()
	sent := 0
loop:
	for sent < total {
		due := min(int(time.Since(begin)/interval)+1, total)
		for ; sent < due; sent++ {
			path, anom := fmt.Sprintf("%s/items?id=%d", spec.Prefix, sent), false
			if spec.FailEvery > 0 && sent%spec.FailEvery == spec.FailEvery-1 {
				path, anom = path+"&fail=1", true
			}
			if spec.Special != nil {
				if p, a, ok := spec.Special(sent); ok {
					path, anom = p, a
				}
			}
			select {
			case jobs <- job{i: sent, path: path, anom: anom}:
			case <-ctx.Done():
				break loop
			}
		}
		time.Sleep(time.Millisecond)
	}
	close(jobs)
	wg.Wait()
	if recs == nil {
		return nil
	}
	return recs[:sent]
}

// latencies returns the latencies of the successful requests that keep
// returns true for.
func latencies(recs []reqRecord, keep func(reqRecord) bool) []float64 {
	var out []float64
	for _, r := range recs {
		if r.OK && r.End > 0 && (keep == nil || keep(r)) {
			out = append(out, float64(r.latency()))
		}
	}
	return out
}
