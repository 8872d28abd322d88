package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// row is one line of the table.
type row struct {
	item   string // the item number
	name   string
	value  string
	target string // empty when the row has none
	status string // "met", "NOT met", "not measured"; empty without a target
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

type report struct {
	rows      []row
	benchstat string
	failures  []string
	began     time.Time
	took      time.Duration
	quick     bool
	command   string
	machine   [][2]string
	load      []float64 // 1-minute load average, sampled during the run
}

// saved is a report as written to results.json, from which -render
// writes the Markdown file again (say, after editing NOTES.md).
type saved struct {
	Began     time.Time     `json:"began"`
	Took      time.Duration `json:"took_ns"`
	Quick     bool          `json:"quick"`
	Command   string        `json:"command"`
	Machine   [][2]string   `json:"machine"`
	Load      []float64     `json:"load_average"`
	Rows      []savedRow    `json:"rows"`
	Benchstat string        `json:"benchstat"`
	Failures  []string      `json:"failures,omitempty"`
}

type savedRow struct {
	Item   string `json:"item"`
	Name   string `json:"name"`
	Value  string `json:"value"`
	Target string `json:"target,omitempty"`
	Status string `json:"status,omitempty"`
}

func (r *report) save(path string) error {
	s := saved{Began: r.began, Took: r.took, Quick: r.quick, Command: r.command, Machine: r.machine,
		Load: r.load, Benchstat: r.benchstat, Failures: r.failures}
	for _, x := range r.rows {
		s.Rows = append(s.Rows, savedRow{x.item, x.name, x.value, x.target, x.status})
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func loadReport(path string) (*report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s saved
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	r := &report{began: s.Began, took: s.Took, quick: s.Quick, command: s.Command, machine: s.Machine,
		load: s.Load, benchstat: s.Benchstat, failures: s.Failures}
	for _, x := range s.Rows {
		r.rows = append(r.rows, row{x.Item, x.Name, x.Value, x.Target, x.Status})
	}
	return r, nil
}

// sampleLoad records the 1-minute load average every 5s until stop closes.
func (r *report) sampleLoad(stop <-chan struct{}) {
	for {
		if b, err := os.ReadFile("/proc/loadavg"); err == nil {
			var l float64
			if _, err := fmt.Sscan(string(b), &l); err == nil {
				r.load = append(r.load, l)
			}
		}
		select {
		case <-stop:
			return
		case <-time.After(5 * time.Second):
		}
	}
}

func (r *report) add(rows ...row) { r.rows = append(r.rows, rows...) }

// table is the one table: every row, Markdown, so that the terminal and
// BENCHMARKS.md show the same thing.
func (r *report) table() string {
	var b strings.Builder
	b.WriteString("| # | measurement | result | target | met |\n|---|---|---|---|---|\n")
	for _, x := range r.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", x.item, esc(x.name), esc(x.value), esc(x.target), x.status)
	}
	for _, f := range r.failures {
		fmt.Fprintf(&b, "| – | run failed | %s | | |\n", esc(f))
	}
	return b.String()
}

func esc(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// runBenchstat summarizes the per-span rounds with benchstat, recorder off
// against on.
func runBenchstat(cfg runConfig) string {
	var b strings.Builder
	for _, pkg := range []string{"wrapped", "spans"} {
		cmd := exec.Command("go", "run", "golang.org/x/perf/cmd/benchstat", "-col", "/rec", filepath.Join(cfg.work, pkg+".bench.txt"))
		cmd.Dir = cfg.benchDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Fprintf(&b, "benchstat on %s failed: %v\n%s\n", pkg, err, out)
			continue
		}
		fmt.Fprintf(&b, "### Process %q\n\n```\n%s```\n\n", pkg, out)
	}
	return b.String()
}

func (r *report) markdown(benchDir string) string {
	var b bytes.Buffer
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("What otelfr costs, measured side by side on one machine in one run. ")
	b.WriteString("This file is written by the benchmark run; reproduce it with\n\n")
	fmt.Fprintf(&b, "```sh\n%s\n```\n\n", r.command)
	b.WriteString("(about 10 minutes on this machine; `scripts/bench.sh --quick` is the 1–2 minute run CI uses to prove the benchmarks still run, and writes nothing).\n\n")
	if r.quick {
		b.WriteString("**This is a quick run: its numbers are not meaningful.**\n\n")
	}
	b.WriteString("## Machine\n\n")
	for _, kv := range r.machine {
		fmt.Fprintf(&b, "- %s: %s\n", kv[0], kv[1])
	}
	if len(r.load) > 0 {
		fmt.Fprintf(&b, "- 1-minute load average during the run (2 cores): median %.1f, min %.1f, max %.1f\n",
			median(r.load), slices.Min(r.load), slices.Max(r.load))
	}
	fmt.Fprintf(&b, "- run took: %s\n\n", r.took.Round(time.Second))
	b.WriteString("## Results\n\n")
	b.WriteString(r.table())
	b.WriteString("\n")
	if notes, err := os.ReadFile(filepath.Join(benchDir, "NOTES.md")); err == nil {
		b.Write(notes)
		b.WriteString("\n")
	}
	if r.benchstat != "" {
		b.WriteString("## Appendix: benchstat of the per-span rounds, recorder off vs on\n\n")
		b.WriteString(r.benchstat)
	}
	return b.String()
}

// machine describes the machine the run measured.
func machine(t time.Time) [][2]string {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "MemTotal:" {
				var kb int64
				fmt.Sscan(f[1], &kb)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	osName := runtime.GOOS
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				osName = strings.Trim(v, `"`)
			}
		}
	}
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	gov, _ := exec.Command("go", "version").Output()
	return [][2]string{
		{"date", t.UTC().Format("2006-01-02 15:04 MST")},
		{"CPU", fmt.Sprintf("%s, %d cores visible to Go (GOMAXPROCS %d)", cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0))},
		{"memory", mem},
		{"OS", fmt.Sprintf("%s, kernel %s", osName, kernel)},
		{"Go", strings.TrimSpace(string(gov))},
		{"note", "a shared machine: other work ran beside the benchmarks, so configurations are interleaved and medians quoted"},
	}
}
