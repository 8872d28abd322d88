package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Item 4: analysis. analysis.Analyze runs in a fresh process per snapshot
// (cmd/analyzetime, built on its own so that a package analysis in the
// middle of being written cannot break the other items); `go tool trace`
// runs on the same file, timed from its start until its main page and
// /goroutines answer 200.

type analysisResult struct {
	window   uint64
	size     int64
	analyze  []float64 // ns per run
	verdict  string
	status   string
	parsed   any
	errs     []string
	toolMain time.Duration // go tool trace: start → GET / 200
	toolGor  time.Duration // start → GET /goroutines 200
	toolErr  string
	unbuilt  string // why analyzetime did not build
}

// buildAnalyzer builds cmd/analyzetime, or says why it cannot.
func buildAnalyzer(cfg runConfig) (string, error) {
	bin := filepath.Join(cfg.work, "analyzetime")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/analyzetime")
	cmd.Dir = cfg.benchDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, firstLines(string(out), 6))
	}
	return bin, nil
}

func runAnalysis(cfg runConfig, bin string, unbuilt error, snaps []*windowResult) []analysisResult {
	toolPath, toolErr := traceTool()
	var out []analysisResult
	for _, w := range snaps {
		if w.analysis == "" {
			continue
		}
		r := analysisResult{window: w.window}
		if st, err := os.Stat(w.analysis + ".trace"); err == nil {
			r.size = st.Size()
		}
		if unbuilt != nil {
			r.unbuilt = unbuilt.Error()
		} else {
			logf("analysis: %s (%.1f MiB)", filepath.Base(w.analysis), float64(r.size)/(1<<20))
			cmd := exec.Command(bin, "-trace", w.analysis+".trace", "-span", w.analysis+".json", "-n", fmt.Sprint(cfg.analyzeRuns))
			cmd.Stderr = os.Stderr
			b, err := cmd.Output()
			var res struct {
				Durations []int64  `json:"durations_ns"`
				Verdict   string   `json:"verdict"`
				Status    string   `json:"status"`
				Parsed    any      `json:"parsed"`
				Errors    []string `json:"errors"`
			}
			if err == nil {
				err = json.Unmarshal(b, &res)
			}
			if err != nil {
				r.errs = append(r.errs, err.Error())
			}
			for _, d := range res.Durations {
				r.analyze = append(r.analyze, float64(d))
			}
			r.verdict, r.status, r.parsed, r.errs = res.Verdict, res.Status, res.Parsed, append(r.errs, res.Errors...)
		}
		if toolErr != nil {
			r.toolErr = toolErr.Error()
		} else {
			logf("analysis: go tool trace %s", filepath.Base(w.analysis))
			var err error
			if r.toolMain, r.toolGor, err = timeTraceTool(toolPath, w.analysis+".trace", cfg.toolTimeout); err != nil {
				r.toolErr = err.Error()
			}
		}
		out = append(out, r)
	}
	return out
}

// traceTool returns the path of `go tool trace`'s binary, building it if
// needed, so that the timing leaves out the go command's own start.
func traceTool() (string, error) {
	b, err := exec.Command("go", "tool", "-n", "trace").Output()
	if err != nil {
		return "", fmt.Errorf("go tool -n trace: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

var listenRE = regexp.MustCompile(`listening on (http://\S+)`)

// timeTraceTool starts the trace viewer on file and times, from its start,
// the first 200 of its main page and of /goroutines. It then kills the
// viewer, a process this function started, by its PID.
func timeTraceTool(tool, file string, timeout time.Duration) (mainPage, goroutines time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.Command(tool, "-http=127.0.0.1:0", file)
	cmd.Env = append(os.Environ(), "BROWSER=/bin/false") // no browser to open
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	urlc := make(chan string, 1)
	var log bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
			}
		}
		close(urlc)
	}()
	var base string
	select {
	case u, ok := <-urlc:
		if !ok {
			return 0, 0, fmt.Errorf("go tool trace exited: %s", firstLines(log.String(), 4))
		}
		base = u
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("go tool trace: no address after %s", timeout)
	}
	get := func(path string) (time.Duration, error) {
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return time.Since(start), nil
				}
			}
			if ctx.Err() != nil {
				return 0, fmt.Errorf("GET %s: %v", path, ctx.Err())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if mainPage, err = get("/"); err != nil {
		return 0, 0, err
	}
	goroutines, err = get("/goroutines")
	return mainPage, goroutines, err
}

func analysisRows(rs []analysisResult) []row {
	var rows []row
	for _, r := range rs {
		mib := float64(r.size) / (1 << 20)
		name := fmt.Sprintf("analysis, %.1f MiB snapshot (%d MiB window)", mib, r.window>>20)
		rw := row{item: "4", name: name}
		tool := "go tool trace: " + r.toolErr
		if r.toolErr == "" {
			tool = fmt.Sprintf("go tool trace: main page %s, /goroutines %s", fdur(float64(r.toolMain)), fdur(float64(r.toolGor)))
		}
		switch {
		case r.unbuilt != "":
			rw.value = "analysis.Analyze: n/a, package analysis does not build (" + r.unbuilt + "); " + tool
			rw.status = "not measured"
		case len(r.analyze) == 0:
			rw.value = fmt.Sprintf("analysis.Analyze failed: %v; %s", r.errs, tool)
			rw.status = "not measured"
		default:
			warm := r.analyze
			if len(warm) > 1 {
				warm = warm[1:]
			}
			med := median(warm)
			rw.value = fmt.Sprintf("analysis.Analyze: first run %s, median of the next %d %s (status %s, parsed %v); %s",
				fdur(r.analyze[0]), len(warm), fdur(med), r.status, r.parsed, tool)
			if len(r.errs) > 0 {
				rw.value += fmt.Sprintf("; errors: %v", r.errs)
			}
			if r.toolErr == "" {
				rw.value += fmt.Sprintf("; go tool trace / Analyze(first run) = ×%.0f", float64(r.toolMain)/r.analyze[0])
			}
			if r.window>>20 == 32 {
				rw.target = "first run < 200 ms and ≥ 10× faster than go tool trace"
				rw.status = met(r.analyze[0] < 200e6 && r.toolErr == "" && float64(r.toolMain) >= 10*r.analyze[0])
			}
		}
		rows = append(rows, rw)
		if r.verdict != "" {
			rows = append(rows, row{item: "4", name: "  verdict for the 150ms slow span, " + fmt.Sprintf("%d MiB", r.window>>20), value: r.verdict})
		}
	}
	return rows
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}
