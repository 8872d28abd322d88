package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Item 1: per-span benchmarks. The two test packages are compiled once and
// run in rounds, alternating their order, so that every configuration is
// measured across the same stretch of machine noise; the table quotes
// medians across rounds, and differences and ratios are taken within a
// round before the median.

type benchResult struct {
	ns, cpu, bytes, allocs float64 // cpu: the benchmark thread's CPU time per op
}

// perSpan holds, per process ("spans" or "wrapped") and benchmark name,
// one result per round.
type perSpan map[string]map[string][]benchResult

func runPerSpan(cfg runConfig) (perSpan, error) {
	bins := map[string]string{}
	for _, pkg := range []string{"spans", "wrapped"} {
		bin := filepath.Join(cfg.work, pkg+".test")
		cmd := exec.Command("go", "test", "-c", "-o", bin, "./"+pkg)
		cmd.Dir = cfg.benchDir
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("building %s benchmarks: %w", pkg, err)
		}
		bins[pkg] = bin
	}
	res := perSpan{"spans": {}, "wrapped": {}}
	raw := map[string]*bytes.Buffer{"spans": {}, "wrapped": {}}
	for round := range cfg.spanRounds {
		order := []string{"spans", "wrapped"}
		if round%2 == 1 {
			order = []string{"wrapped", "spans"}
		}
		for _, pkg := range order {
			logf("per-span: round %d/%d, %s", round+1, cfg.spanRounds, pkg)
			cmd := exec.Command(bins[pkg], "-test.run", "^$", "-test.bench", ".",
				"-test.benchmem", "-test.benchtime", cfg.benchtime, "-test.count", "1")
			cmd.Dir = filepath.Join(cfg.benchDir, pkg)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				return nil, fmt.Errorf("running %s benchmarks: %w\n%s", pkg, err, out)
			}
			raw[pkg].Write(out)
			for name, r := range parseBench(out) {
				res[pkg][name] = append(res[pkg][name], r)
			}
		}
	}
	for pkg, b := range raw {
		if err := os.WriteFile(filepath.Join(cfg.work, pkg+".bench.txt"), b.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// parseBench reads `go test -bench -benchmem` output; names lose their
// -GOMAXPROCS suffix.
func parseBench(out []byte) map[string]benchResult {
	res := map[string]benchResult{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		var r benchResult
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				r.ns = v
			case "cpu-ns/op":
				r.cpu = v
			case "B/op":
				r.bytes = v
			case "allocs/op":
				r.allocs = v
			}
		}
		res[name] = r
	}
	return res
}

func (p perSpan) med(pkg, name string) (benchResult, bool) {
	rs := p[pkg][name]
	if len(rs) == 0 {
		return benchResult{}, false
	}
	var ns, cpu, b, a []float64
	for _, r := range rs {
		ns, cpu, b, a = append(ns, r.ns), append(cpu, r.cpu), append(b, r.bytes), append(a, r.allocs)
	}
	return benchResult{median(ns), median(cpu), median(b), median(a)}, true
}

// diff returns the median over rounds of name's ns/op (cpu: cpu-ns/op)
// minus base's.
func (p perSpan) diff(pkg, name, base string, cpu bool) float64 {
	x, y := p[pkg][name], p[pkg][base]
	var d []float64
	for i := range min(len(x), len(y)) {
		if cpu {
			d = append(d, x[i].cpu-y[i].cpu)
		} else {
			d = append(d, x[i].ns-y[i].ns)
		}
	}
	return median(d)
}

// ratio returns the median over rounds of name's ns/op over base's.
func (p perSpan) ratio(pkg, name, base string) float64 {
	x, y := p[pkg][name], p[pkg][base]
	var d []float64
	for i := range min(len(x), len(y)) {
		d = append(d, x[i].ns/y[i].ns)
	}
	return median(d)
}

// spanRow describes one per-span configuration in the table.
type spanRow struct {
	pkg, bench, label string
}

var spanRows = []spanRow{
	{"wrapped", "sdk", "bare SDK (WithSyncer no-op exporter)"},
	{"wrapped", "noop", "no-op TracerProvider (trace/noop)"},
	{"wrapped", "wrap-noop", "otelfr.WrapTracerProvider around the no-op provider"},
	{"wrapped", "wrap", "+ otelfr.WrapTracerProvider"},
	{"wrapped", "proc", "+ spanprocessor (wrapper in process: no self-logging)"},
	{"spans", "proc", "+ spanprocessor (alone in process: logs span IDs itself)"},
	{"wrapped", "wrap+proc", "+ wrapper + spanprocessor (full otelfr)"},
	{"spans", "proc-adaptive", "+ spanprocessor WithAdaptiveLatency (alone)"},
	{"wrapped", "wrap+proc-adaptive", "+ wrapper + spanprocessor WithAdaptiveLatency"},
	{"wrapped", "never-sample+wrap+proc", "never-sample, wrapper + processor"},
	{"wrapped", "record-unsampled+wrap+proc", "RecordUnsampled(never-sample), wrapper + processor"},
	{"spans", "never-sample+proc", "never-sample, processor alone"},
	{"spans", "record-unsampled+proc", "RecordUnsampled(never-sample), processor alone"},
	{"wrapped", "pyroscope", "peer: otelpyroscope.NewTracerProvider"},
}

func perSpanRows(p perSpan) []row {
	var rows []row
	for _, rec := range []string{"rec=off", "rec=on"} {
		for _, sr := range spanRows {
			name := "BenchmarkSpan/" + rec + "/" + sr.bench
			m, ok := p.med(sr.pkg, name)
			if !ok {
				continue
			}
			base := "BenchmarkSpan/" + rec + "/sdk"
			if sr.bench == "wrap-noop" {
				base = "BenchmarkSpan/" + rec + "/noop"
			}
			value := fmt.Sprintf("%s ns/op (%s cpu-ns/op), %s B/op, %s allocs/op", fnum(m.ns), fnum(m.cpu), fnum(m.bytes), fnum(m.allocs))
			if sr.bench == "wrap-noop" {
				value += fmt.Sprintf(", extra over no-op %+.1f ns (%+.1f cpu-ns)", p.diff(sr.pkg, name, base, false), p.diff(sr.pkg, name, base, true))
			} else if sr.bench != "sdk" && sr.bench != "noop" {
				value += fmt.Sprintf(", ×%.2f bare; extra %+.0f ns (%+.0f cpu-ns)", p.ratio(sr.pkg, name, base), p.diff(sr.pkg, name, base, false), p.diff(sr.pkg, name, base, true))
			}
			r := row{item: "1", name: fmt.Sprintf("span %s: %s", rec, sr.label), value: value}
			// The wrapper's targets: with the recorder off, its own cost
			// (around the no-op provider); with it on, its cost around the
			// SDK, whose recording spans it logs.
			if (sr.bench == "wrap-noop" && rec == "rec=off") || (sr.bench == "wrap" && rec == "rec=on") {
				d, dw := p.diff(sr.pkg, name, base, true), p.diff(sr.pkg, name, base, false)
				limit := 700.0
				if rec == "rec=off" {
					limit = 30
				}
				r.target, r.status = fmt.Sprintf("extra < %.0f ns", limit), met(d < limit)
				if (dw < limit) != (d < limit) {
					r.status += fmt.Sprintf(" (cpu); wall: %s", met(dw < limit))
				}
			}
			if sr.bench == "record-unsampled+wrap+proc" || sr.bench == "record-unsampled+proc" {
				never := strings.Replace(name, "record-unsampled", "never-sample", 1)
				r.value += fmt.Sprintf("; vs never-sample %+.0f ns (%+.0f cpu-ns)", p.diff(sr.pkg, name, never, false), p.diff(sr.pkg, name, never, true))
			}
			rows = append(rows, r)
		}
	}
	for _, rec := range []string{"rec=off", "rec=on"} {
		for _, trig := range []string{"fixed", "adaptive"} {
			for _, sp := range []string{"stub", "http", "http+event"} {
				for _, pkg := range []string{"wrapped", "spans"} {
					if rec == "rec=off" && pkg == "spans" {
						continue // the same path as in "wrapped"
					}
					name := fmt.Sprintf("BenchmarkOnEnd/%s/%s/%s", rec, trig, sp)
					m, ok := p.med(pkg, name)
					if !ok {
						continue
					}
					where := "wrapper in process"
					if pkg == "spans" {
						where = "processor alone: logs the span ID"
					} else if rec == "rec=off" {
						where = "any process"
					}
					r := row{
						item:  "1",
						name:  fmt.Sprintf("OnEnd alone %s, %s trigger, %s span (%s)", rec, trig, spanLabel[sp], where),
						value: fmt.Sprintf("%s ns/op (%s cpu-ns/op), %s B/op, %s allocs/op", fnum(m.ns), fnum(m.cpu), fnum(m.bytes), fnum(m.allocs)),
					}
					if trig == "fixed" && pkg == "wrapped" {
						r.target, r.status = "< 50 ns, 0 allocs", met(m.cpu < 50 && m.allocs == 0)
						if (m.ns < 50) != (m.cpu < 50) {
							r.status += fmt.Sprintf(" (cpu); wall: %s", met(m.ns < 50 && m.allocs == 0))
						}
					}
					rows = append(rows, r)
				}
			}
		}
	}
	return rows
}

var spanLabel = map[string]string{
	"stub":       "tracetest stub",
	"http":       "SDK otelhttp-like (13 attrs)",
	"http+event": "SDK otelhttp-like + event",
}

func fnum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}
