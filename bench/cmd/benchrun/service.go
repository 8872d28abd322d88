package main

import (
	"context"
	"fmt"
	"time"
)

// Item 2: service level. Each configuration runs in a fresh server process
// per round; the order of configurations rotates from round to round. The
// server's CPU time (getrusage, user+system) over the measured stretch is
// divided by the requests completed in it.

type serviceConfig struct {
	name, label string
	args        []string
	failEvery   int
}

var serviceConfigs = []serviceConfig{
	{"none", "no recorder (SDK + otelhttp, BatchSpanProcessor no-op)", []string{"-setup", setupNone}, 0},
	{"recorder", "recorder only (otelfr.Start)", []string{"-setup", setupRecorder}, 0},
	{"full", "full otelfr (recorder + wrapper + processor), no anomalies", []string{"-setup", setupFull}, 0},
	{"anomalies", "full otelfr, 1% of requests fail (error trigger), snapshot every 1s (WithMinInterval(1s))", []string{"-setup", setupFull}, 100},
}

type serviceRound struct {
	cpuPerReq     time.Duration
	p50, p99      float64
	requests      int
	snapshots     int64
	snapshotBytes int64
}

type serviceResult map[string][]serviceRound

func runService(cfg runConfig) (serviceResult, error) {
	res := serviceResult{}
	for round := range cfg.serviceRounds {
		for k := range serviceConfigs {
			sc := serviceConfigs[(k+round)%len(serviceConfigs)]
			logf("service: round %d/%d, %s", round+1, cfg.serviceRounds, sc.name)
			r, err := serviceOnce(cfg, sc)
			if err != nil {
				return nil, fmt.Errorf("service %s: %w", sc.name, err)
			}
			res[sc.name] = append(res[sc.name], r)
		}
	}
	return res, nil
}

func serviceOnce(cfg runConfig, sc serviceConfig) (serviceRound, error) {
	p, err := startServer(append(sc.args, "-store", cfg.tempDir("store-service"))...)
	if err != nil {
		return serviceRound{}, err
	}
	defer p.stop()
	ctx := context.Background()
	spec := loadSpec{URL: p.app, Rate: cfg.serviceRate, Duration: cfg.serviceWarmup, FailEvery: sc.failEvery}
	runLoad(ctx, spec)
	c0, err := p.cpu()
	if err != nil {
		return serviceRound{}, err
	}
	spec.Duration = cfg.serviceMeasure
	recs := runLoad(ctx, spec)
	c1, err := p.cpu()
	if err != nil {
		return serviceRound{}, err
	}
	done := 0
	for _, r := range recs {
		if r.OK {
			done++
		}
	}
	if done == 0 {
		return serviceRound{}, fmt.Errorf("no request succeeded")
	}
	lat := latencies(recs, func(r reqRecord) bool { return !r.Anomaly })
	out := serviceRound{
		cpuPerReq: (c1 - c0) / time.Duration(done),
		p50:       quantile(lat, 0.50),
		p99:       quantile(lat, 0.99),
		requests:  done,
	}
	var st []struct{ Snapshots, SnapshotBytes int64 }
	if err := p.get("/stats", &st); err == nil {
		for _, s := range st {
			out.snapshots += s.Snapshots
			out.snapshotBytes += s.SnapshotBytes
		}
	}
	return out, nil
}

func serviceRows(res serviceResult, cfg runConfig) []row {
	var rows []row
	cpu := func(name string) []float64 {
		var xs []float64
		for _, r := range res[name] {
			xs = append(xs, float64(r.cpuPerReq))
		}
		return xs
	}
	for _, sc := range serviceConfigs {
		rs := res[sc.name]
		if len(rs) == 0 {
			continue
		}
		var p50, p99, snaps []float64
		for _, r := range rs {
			p50, p99, snaps = append(p50, r.p50), append(p99, r.p99), append(snaps, float64(r.snapshots))
		}
		v := fmt.Sprintf("CPU/req %.1f µs, p50 %s, p99 %s", median(cpu(sc.name))/1e3, fdur(median(p50)), fdur(median(p99)))
		if sc.name != "none" {
			v += fmt.Sprintf(", CPU ×%.3f no recorder", pairedRatio(cpu(sc.name), cpu("none")))
		}
		if sc.name == "anomalies" {
			v += fmt.Sprintf(", %.0f snapshots per %s run", median(snaps), cfg.serviceMeasure+cfg.serviceWarmup)
		}
		r := row{item: "2", name: "service: " + sc.label, value: v}
		if sc.name == "full" || sc.name == "anomalies" {
			ratio := pairedRatio(cpu(sc.name), cpu("recorder"))
			r.value += fmt.Sprintf(", ×%.3f recorder only", ratio)
			if sc.name == "full" {
				r.target, r.status = "CPU/req ≤ 1.03 × recorder only", met(ratio <= 1.03)
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// pairedRatio is the median over rounds of x[i]/y[i].
func pairedRatio(x, y []float64) float64 {
	var d []float64
	for i := range min(len(x), len(y)) {
		d = append(d, x[i]/y[i])
	}
	return median(d)
}

// fdur formats nanoseconds.
func fdur(ns float64) string {
	d := time.Duration(ns)
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}
