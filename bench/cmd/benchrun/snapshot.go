package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Items 3 and 5, and the snapshots item 4 analyses. One server process per
// window size: full otelfr with the window's MaxBytes, a MinAge of an hour
// (so that the window is bounded by its size alone), no rate limits, and
// two pipelines that differ only in the coalesce window (0 under /, the
// default 20ms under /c20/); anomalies alternate between them.

type windowSpec struct {
	window   uint64
	timed    int  // anomalies to time (item 3); 0 skips
	storm    bool // run an anomaly storm (item 5)
	analysis bool // keep a snapshot of a slow span for item 4
}

type windowResult struct {
	window      uint64
	filled      int64 // bytes the window held before the first snapshot
	fillTime    time.Duration
	anomalies   []anomalyRecord
	overlap     []float64 // latencies of requests overlapping a snapshot path
	overStored  []float64 // of those, the ones overlapping a path before it stored its snapshot
	overAfter   []float64 // and the others: only the checksum, AddSpans and the export
	rest        []float64
	memFull     memStats // window filled, before any snapshot
	memAfter    memStats // after the timed snapshots
	storm       bool
	stormDur    time.Duration
	memPre      memStats // right before the storm
	stormRSS    []int64  // sampled every 100ms during the storm
	spacing     time.Duration
	stormPeak   memStats // highest values sampled during the storm
	memStorm    memStats // right after the storm
	memStormGC  memStats // after a GC
	stormSnaps  int64
	stormSkip   map[string]int64
	stormAnoms  int64
	analysisRec *anomalyRecord // the slow span and its snapshot, copied to analysisFile
	analysis    string
}

func runWindow(cfg runConfig, ws windowSpec) (*windowResult, error) {
	store := cfg.tempDir(fmt.Sprintf("store-%dMiB", ws.window>>20))
	p, err := startServer("-setup", setupFull, "-probe", "-stamp", "-dual",
		"-window", fmt.Sprint(ws.window), "-min-age", "1h",
		"-min-interval", "0", "-byte-budget", "0", "-coalesce", "0",
		"-latency", "0", "-slow-latency", "100ms", "-store", store)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	res := &windowResult{window: ws.window, storm: ws.storm, stormDur: cfg.stormDur}
	wmib := ws.window >> 20

	// Fill the window: the HTTP load, plus in-process requests for speed,
	// until the flight recorder holds 90% of the window; then the HTTP
	// load alone for a few seconds, so that the newest part of the window,
	// where anomalies fall, is the service's own.
	stopLoad := backgroundLoad(p, cfg.serviceRate)
	defer func() { stopLoad() }()
	begin := time.Now()
	// Aim for about 8 trace generations (a second each) per window: each
	// request, over the network or in-process, adds about 500 bytes.
	const perRequest = 500
	target := float64(ws.window) / 8 // bytes per second
	rate := max(0, (target-float64(cfg.serviceRate)*perRequest)/perRequest)
	last := int64(0)
	for time.Since(begin) < cfg.fillTimeout {
		if err := p.post(fmt.Sprintf("/churn?rate=%d", int64(rate))); err != nil {
			return nil, err
		}
		time.Sleep(time.Second)
		var w map[string]int64
		if err := p.get("/window", &w); err != nil {
			continue // a snapshot in progress; try again
		}
		res.filled = w["bytes"]
		if os.Getenv("BENCH_DEBUG_FILL") != "" {
			logf("fill: %d bytes after %s, %d in-process requests/s", res.filled, time.Since(begin).Round(time.Millisecond), int64(rate))
		}
		if res.filled >= int64(ws.window)*9/10 {
			break
		}
		if grew := float64(res.filled - last); grew > 0 {
			rate = max(0, min(rate+(target-grew)/perRequest, 4*rate+1000))
		}
		last = res.filled
	}
	if err := p.post("/churn?rate=0"); err != nil {
		return nil, err
	}
	res.fillTime = time.Since(begin)
	logf("window %d MiB: %d MiB held after %s", wmib, res.filled>>20, res.fillTime.Round(time.Second))
	time.Sleep(cfg.settle)
	if res.memFull, err = p.mem(); err != nil {
		return nil, err
	}

	if ws.timed > 0 {
		// A separate paced load of its own, with one anomaly every
		// spacing, alternating between the two pipelines.
		stopLoad()
		// Larger snapshots come further apart, so that the disk keeps up
		// with the store's writes as it would at real rates.
		spacing := cfg.anomalySpacing * time.Duration(max(1, ws.window/(16*mib)))
		timed := ws.timed
		if !cfg.quick {
			timed = min(timed, max(10, int(24*time.Second/spacing)))
		}
		res.spacing = spacing
		every := max(int(spacing.Seconds()*float64(cfg.serviceRate)), 1)
		recs := runLoad(context.Background(), loadSpec{
			URL: p.app, Rate: cfg.serviceRate,
			Duration: time.Duration(timed)*spacing + spacing,
			Special: func(i int) (string, bool, bool) {
				if i%every != every/2 {
					return "", false, false
				}
				prefix := ""
				if (i/every)%2 == 1 {
					prefix = "/c20"
				}
				return fmt.Sprintf("%s/items?id=%d&fail=1", prefix, i), true, true
			},
		})
		time.Sleep(500 * time.Millisecond) // let the last attachment through
		if dump := os.Getenv("BENCH_DUMP_TRACE"); dump != "" {
			_ = p.post("/dump?file=" + dump)
		}
		if err := p.get("/anomalies", &res.anomalies); err != nil {
			return nil, err
		}
		if b, err := json.MarshalIndent(res.anomalies, "", " "); err == nil {
			_ = os.WriteFile(filepath.Join(cfg.work, fmt.Sprintf("anomalies-%dMiB.json", wmib)), b, 0o644)
		}
		// Each path is OnEnd, Stored, Attached: a request overlaps it
		// until the attachment, and its stored part until the
		// snapshot is stored.
		var paths [][3]int64
		for _, a := range res.anomalies {
			if a.OnEnd > 0 && a.Stored > 0 && a.Attached > 0 {
				paths = append(paths, [3]int64{a.OnEnd, a.Stored, a.Attached})
			}
		}
		for _, r := range recs {
			if r.Anomaly || !r.OK || r.End == 0 {
				continue
			}
			over, toStored := false, false
			for _, iv := range paths {
				if r.Start < iv[2] && r.End > iv[0] {
					over = true
					toStored = toStored || r.Start < iv[1]
				}
			}
			lat := float64(r.latency())
			switch {
			case !over:
				res.rest = append(res.rest, lat)
			case toStored:
				res.overlap = append(res.overlap, lat)
				res.overStored = append(res.overStored, lat)
			default:
				res.overlap = append(res.overlap, lat)
				res.overAfter = append(res.overAfter, lat)
			}
		}
		if res.memAfter, err = p.mem(); err != nil {
			return nil, err
		}
		stopLoad = backgroundLoad(p, cfg.serviceRate)
	}

	if ws.analysis {
		if err := keepSlowSnapshot(cfg, p, res); err != nil {
			return nil, err
		}
	}

	if ws.storm {
		if err := storm(cfg, p, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// backgroundLoad drives the service at rate until the returned function is
// called (and for 30 minutes at most); that function waits for the load to
// end.
func backgroundLoad(p *serverProc, rate int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runLoad(ctx, loadSpec{URL: p.app, Rate: rate, Duration: 30 * time.Minute, NoRecord: true})
	}()
	return func() {
		cancel()
		<-done
	}
}

// keepSlowSnapshot makes one request that waits on a contended mutex for
// 150ms (a latency anomaly), and copies the snapshot taken for it, with the
// span's identity, for item 4.
func keepSlowSnapshot(cfg runConfig, p *serverProc, res *windowResult) error {
	before := 0
	var as []anomalyRecord
	if err := p.get("/anomalies", &as); err != nil {
		return err
	}
	before = len(as)
	resp, err := loadClient.Get(p.app + "/slow?ms=150")
	if err != nil {
		return err
	}
	resp.Body.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := p.get("/anomalies", &as); err != nil {
			return err
		}
		for _, a := range as[min(before, len(as)):] {
			if a.Name != "GET /slow" {
				continue
			}
			if a.Path == "" {
				return fmt.Errorf("the slow span got no snapshot: %s", a.Skipped)
			}
			data, err := os.ReadFile(a.Path)
			if err != nil {
				return err
			}
			base := filepath.Join(cfg.work, fmt.Sprintf("analysis-%dMiB", res.window>>20))
			if err := os.WriteFile(base+".trace", data, 0o644); err != nil {
				return err
			}
			j, _ := json.Marshal(a)
			if err := os.WriteFile(base+".json", j, 0o644); err != nil {
				return err
			}
			res.analysisRec, res.analysis = &a, base
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("no outcome for the slow span")
}

// storm makes every request anomalous for cfg.stormDur while sampling the
// server's memory, then measures it again after the storm and after a GC.
func storm(cfg runConfig, p *serverProc, res *windowResult) error {
	if err := p.post("/record?on=0"); err != nil {
		return err
	}
	var st0 []statsJSON
	if err := p.get("/stats", &st0); err != nil {
		return err
	}
	var err error
	if res.memPre, err = p.mem(); err != nil {
		return err
	}
	done := make(chan struct{})
	var peak memStats
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if m, err := p.mem(); err == nil {
				peak.RSS = max(peak.RSS, m.RSS)
				peak.HeapInUse = max(peak.HeapInUse, m.HeapInUse)
				peak.GoTotal = max(peak.GoTotal, m.GoTotal)
				peak.HeapLive = max(peak.HeapLive, m.HeapLive)
				res.stormRSS = append(res.stormRSS, m.RSS)
			}
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	runLoad(context.Background(), loadSpec{URL: p.app, Prefix: "", Rate: cfg.serviceRate, Duration: cfg.stormDur, FailEvery: 1})
	close(done)
	wg.Wait()
	res.stormPeak = peak
	if os.Getenv("BENCH_DEBUG_FILL") != "" {
		logf("storm RSS samples (MiB): %v", func() (out []int64) {
			for _, r := range res.stormRSS {
				out = append(out, r>>20)
			}
			return out
		}())
	}
	time.Sleep(cfg.settle)
	if res.memStorm, err = p.mem(); err != nil {
		return err
	}
	var gc memStats
	if err := ctlPostJSON(p, "/gc", &gc); err != nil {
		return err
	}
	res.memStormGC = gc
	var st1 []statsJSON
	if err := p.get("/stats", &st1); err != nil {
		return err
	}
	res.stormSkip = map[string]int64{}
	for i := range st1 {
		res.stormSnaps += st1[i].Snapshots - st0[i].Snapshots
		res.stormAnoms += st1[i].Anomalies - st0[i].Anomalies
		for k, v := range st1[i].Skipped {
			res.stormSkip[k] += v - st0[i].Skipped[k]
		}
	}
	return nil
}

type statsJSON struct {
	Anomalies, Snapshots, SnapshotBytes, Linked int64
	Skipped                                     map[string]int64
}

func ctlPostJSON(p *serverProc, path string, v any) error {
	resp, err := ctlClient.Post(p.ctl+path, "text/plain", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// baselineMemory runs the service without a recorder under the same load
// and returns its memory.
func baselineMemory(cfg runConfig) (memStats, error) {
	p, err := startServer("-setup", setupNone, "-store", cfg.tempDir("store-baseline"))
	if err != nil {
		return memStats{}, err
	}
	defer p.stop()
	runLoad(context.Background(), loadSpec{URL: p.app, Rate: cfg.serviceRate, Duration: cfg.baselineDur})
	time.Sleep(cfg.settle)
	return p.mem()
}

func snapshotRows(results []*windowResult) []row {
	var rows []row
	for _, r := range results {
		if len(r.anomalies) == 0 {
			continue
		}
		mib := r.window >> 20
		for _, pl := range []struct{ name, label string }{{"c0", "WithCoalesceWindow(0)"}, {"c20", "default coalesce window (20ms)"}} {
			var stored, attach, queue, write, save, after, export, size []float64
			skipped := 0
			for _, a := range r.anomalies {
				if a.Pipeline != pl.name {
					continue
				}
				if a.Attached == 0 || a.OnEnd == 0 || a.SaveEnd == 0 {
					skipped++
					continue
				}
				stored = append(stored, float64(a.Stored-a.OnEnd))
				attach = append(attach, float64(a.Attached-a.OnEnd))
				queue = append(queue, float64(a.TakenAt-a.OnEnd))
				write = append(write, float64(a.SaveStart-a.TakenAt))
				save = append(save, float64(a.SaveEnd-a.SaveStart))
				after = append(after, float64(a.Stored-a.SaveEnd))
				export = append(export, float64(a.Attached-a.Stored))
				size = append(size, float64(a.Size))
			}
			if len(attach) == 0 {
				continue
			}
			// Stored is when WithOnAnomaly reports the span: its snapshot
			// stored and the span forwarded. The checksum, AddSpans and
			// the attachment follow on the export stage.
			v := fmt.Sprintf("OnEnd→stored median %s, p99 %s; OnEnd→attachment median %s, p99 %s (n=%d, snapshot %.1f MiB); medians of the steps: to WriteTo %s, WriteTo into the store (window) %s, Commit %s, forward+report %s, checksum+AddSpans+export %s",
				fdur(median(stored)), fdur(quantile(stored, 0.99)),
				fdur(median(attach)), fdur(quantile(attach, 0.99)), len(attach), median(size)/(1<<20),
				fdur(median(queue)), fdur(median(write)), fdur(median(save)), fdur(median(after)), fdur(median(export)))
			if skipped > 0 {
				v += fmt.Sprintf("; %d without attachment", skipped)
			}
			rw := row{item: "3", name: fmt.Sprintf("snapshot path, %d MiB window, %s, one anomaly every %s", mib, pl.label, r.spacing), value: v}
			if mib == 16 && pl.name == "c0" {
				rw.target, rw.status = "OnEnd→stored median ≤ 15 ms", met(median(stored) <= 15e6)
			}
			rows = append(rows, rw)
		}
		o99, r99 := quantile(r.overlap, 0.99), quantile(r.rest, 0.99)
		rw := row{
			item: "3", name: fmt.Sprintf("requests overlapping a snapshot path, %d MiB window", mib),
			value: fmt.Sprintf("p50 %s, p99 %s (n=%d) vs the rest p50 %s, p99 %s (n=%d): p99 ×%.2f; of those overlapping, until stored p99 %s (n=%d), only after it p99 %s (n=%d)",
				fdur(median(r.overlap)), fdur(o99), len(r.overlap), fdur(median(r.rest)), fdur(r99), len(r.rest), o99/r99,
				fdur(quantile(r.overStored, 0.99)), len(r.overStored), fdur(quantile(r.overAfter, 0.99)), len(r.overAfter)),
			target: "p99 ≤ 3× the rest",
		}
		rw.status = met(o99 <= 3*r99)
		rows = append(rows, rw)
	}
	return rows
}

func memoryRows(base memStats, results []*windowResult) []row {
	rows := []row{{
		item: "5", name: "memory, no recorder (baseline)",
		value: fmt.Sprintf("RSS %s, Go heap live %s, Go mapped %s", fmib(base.RSS), fmib(base.HeapLive), fmib(base.GoTotal)),
	}}
	for _, r := range results {
		if !r.storm {
			continue
		}
		w := int64(r.window)
		mib := w >> 20
		extra := r.memFull.RSS - base.RSS
		rows = append(rows, row{
			item: "5", name: fmt.Sprintf("memory, full otelfr, %d MiB window filled (%s held), before any snapshot", mib, fmib(r.filled)),
			value: fmt.Sprintf("RSS %s (+%s = %.2f× window over baseline), heap live %s, Go 'other' %s",
				fmib(r.memFull.RSS), fmib(extra), float64(extra)/float64(w), fmib(r.memFull.HeapLive), fmib(r.memFull.Other)),
		})
		growth := r.stormPeak.RSS - r.memPre.RSS
		first, last := r.stormPeak.RSS, r.stormPeak.RSS
		if third := len(r.stormRSS) / 3; third > 0 {
			first, last = slices.Max(r.stormRSS[:third]), slices.Max(r.stormRSS[len(r.stormRSS)-third:])
		}
		rw := row{
			item: "5", name: fmt.Sprintf("memory, %d MiB window, anomaly storm (every request anomalous for %s, no rate limit: back-to-back snapshots)", mib, r.stormDur),
			value: fmt.Sprintf("RSS before %s, peak %s (%+.2f× window), highest in the first third of the storm %s, in the last third %s; after the storm %s, after GC %s; heap live before %s, after storm+GC %s; %d anomalies, %d snapshots, skipped %v",
				fmib(r.memPre.RSS), fmib(r.stormPeak.RSS), float64(growth)/float64(w), fmib(first), fmib(last), fmib(r.memStorm.RSS), fmib(r.memStormGC.RSS),
				fmib(r.memPre.HeapLive), fmib(r.memStormGC.HeapLive), r.stormAnoms, r.stormSnaps, r.stormSkip),
			target: "flat: RSS in the last third ≤ first third + 10%; live heap after GC ≤ before + 10% + ½ window (the ring's own play)",
		}
		rw.status = met(float64(last) <= 1.1*float64(first) && float64(r.memStormGC.HeapLive) <= 1.1*float64(r.memPre.HeapLive)+float64(w)/2)
		rows = append(rows, rw)
	}
	return rows
}

func fmib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
