// Command benchrun runs otelfr's benchmarks and prints one table: per-span
// costs, the service-level cost, the snapshot path, analysis and memory,
// each row with its target. scripts/bench.sh runs it.
//
//	benchrun [-quick] [-out BENCHMARKS.md] [-items 1,2,3,4,5]
//
// It starts the service under test as child processes of itself
// ("benchrun server ..."), all bound to 127.0.0.1, each stopped when its
// measurement ends. Every load is paced and bounded in count and time.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

type runConfig struct {
	quick    bool
	work     string // scratch directory
	benchDir string // the bench module
	items    map[string]bool

	spanRounds int
	benchtime  string

	serviceRounds  int
	serviceRate    int
	serviceWarmup  time.Duration
	serviceMeasure time.Duration

	windows        []uint64 // items 3 and 5
	analysisOnly   []uint64 // extra windows for item 4 snapshots
	fillTimeout    time.Duration
	settle         time.Duration
	anomalySpacing time.Duration
	timed          int
	stormDur       time.Duration
	baselineDur    time.Duration

	analyzeRuns int
	toolTimeout time.Duration
}

func (c runConfig) tempDir(name string) string {
	d, err := os.MkdirTemp(c.work, name+"-")
	if err != nil {
		panic(err)
	}
	return d
}

const mib = 1 << 20

func main() {
	if len(os.Args) > 1 && os.Args[1] == "server" {
		if err := runServer(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "benchrun server:", err)
			os.Exit(1)
		}
		return
	}
	quick := flag.Bool("quick", false, "a short run that proves every benchmark still runs; its numbers mean little")
	out := flag.String("out", "", "write the results, with the machine's description, to this Markdown file")
	items := flag.String("items", "1,2,3,4,5", "which items to run")
	work := flag.String("work", "", "scratch directory (a temporary one, removed afterwards, if empty)")
	benchDir := flag.String("bench-dir", ".", "the bench module's directory")
	stormDur := flag.Duration("storm", 0, "override the length of the anomaly storm (item 5)")
	windows := flag.String("windows", "", "override the window sizes of items 3 and 5, in MiB (e.g. 16,64)")
	command := flag.String("command", "scripts/bench.sh", "the command to quote in the Markdown file as reproducing it")
	results := flag.String("results", "", "with -out: also save the results as JSON to this file")
	render := flag.String("render", "", "write -out from this results file (and the current NOTES.md) without running anything")
	flag.Parse()

	if *render != "" {
		rep, err := loadReport(*render)
		if err != nil {
			fatal(err)
		}
		if *out == "" {
			fatal(fmt.Errorf("-render needs -out"))
		}
		dir, _ := filepath.Abs(*benchDir)
		if err := os.WriteFile(*out, []byte(rep.markdown(dir)), 0o644); err != nil {
			fatal(err)
		}
		return
	}

	cfg := runConfig{
		quick: *quick, items: map[string]bool{},
		spanRounds: 6, benchtime: "400ms",
		serviceRounds: 7, serviceRate: 2000, serviceWarmup: 1500 * time.Millisecond, serviceMeasure: 5 * time.Second,
		windows: []uint64{4 * mib, 16 * mib, 64 * mib}, analysisOnly: []uint64{8 * mib, 32 * mib},
		fillTimeout: 90 * time.Second, settle: 2 * time.Second, anomalySpacing: 400 * time.Millisecond,
		timed: 40, stormDur: 4 * time.Second, baselineDur: 5 * time.Second,
		analyzeRuns: 5, toolTimeout: 5 * time.Minute,
	}
	if *quick {
		cfg.spanRounds, cfg.benchtime = 1, "100x"
		cfg.serviceRounds, cfg.serviceWarmup, cfg.serviceMeasure = 1, 300*time.Millisecond, time.Second
		cfg.windows, cfg.analysisOnly = []uint64{4 * mib}, nil
		cfg.fillTimeout, cfg.settle, cfg.timed, cfg.stormDur, cfg.baselineDur = 8*time.Second, 300*time.Millisecond, 4, time.Second, time.Second
		cfg.analyzeRuns, cfg.toolTimeout = 2, time.Minute
	}
	if *stormDur > 0 {
		cfg.stormDur = *stormDur
	}
	if *windows != "" {
		cfg.windows = nil
		for _, w := range strings.Split(*windows, ",") {
			var n uint64
			if _, err := fmt.Sscan(strings.TrimSpace(w), &n); err != nil || n == 0 {
				fatal(fmt.Errorf("-windows: bad size %q", w))
			}
			cfg.windows = append(cfg.windows, n*mib)
		}
	}
	for _, it := range strings.Split(*items, ",") {
		cfg.items[strings.TrimSpace(it)] = true
	}
	var err error
	if cfg.benchDir, err = filepath.Abs(*benchDir); err != nil {
		fatal(err)
	}
	if *work == "" {
		if cfg.work, err = os.MkdirTemp("", "otelfr-bench-"); err != nil {
			fatal(err)
		}
		defer os.RemoveAll(cfg.work)
	} else {
		cfg.work = *work
		if err := os.MkdirAll(cfg.work, 0o755); err != nil {
			fatal(err)
		}
	}
	if *out != "" {
		if *out, err = filepath.Abs(*out); err != nil {
			fatal(err)
		}
	}
	began := time.Now()
	rep := &report{began: began, quick: cfg.quick, command: *command, machine: machine(began)}
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	go func() { rep.sampleLoad(stopLoad); close(loadDone) }()
	if err := run(cfg, rep); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		rep.failures = append(rep.failures, err.Error())
	}
	close(stopLoad)
	<-loadDone
	rep.took = time.Since(began)
	fmt.Println(rep.table())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(rep.markdown(cfg.benchDir)), 0o644); err != nil {
			fatal(err)
		}
		logf("wrote %s", *out)
		if *results != "" {
			if err := rep.save(*results); err != nil {
				fatal(err)
			}
		}
	}
	if len(rep.failures) > 0 {
		os.Exit(1)
	}
}

func run(cfg runConfig, rep *report) error {
	if cfg.items["1"] {
		ps, err := runPerSpan(cfg)
		if err != nil {
			return err
		}
		rep.add(perSpanRows(ps)...)
		rep.benchstat = runBenchstat(cfg)
	}
	if cfg.items["2"] {
		res, err := runService(cfg)
		if err != nil {
			return err
		}
		rep.add(serviceRows(res, cfg)...)
	}
	var windows []*windowResult
	if cfg.items["3"] || cfg.items["4"] || cfg.items["5"] {
		var base memStats
		if cfg.items["5"] {
			var err error
			logf("memory: baseline without a recorder")
			if base, err = baselineMemory(cfg); err != nil {
				return err
			}
		}
		all := slices.Clone(cfg.windows)
		if cfg.items["4"] {
			all = append(all, cfg.analysisOnly...)
		}
		slices.Sort(all)
		for _, w := range all {
			main := slices.Contains(cfg.windows, w)
			ws := windowSpec{
				window:   w,
				storm:    main && cfg.items["5"],
				analysis: cfg.items["4"] && (!main || w == 64*mib || cfg.quick),
			}
			if main && cfg.items["3"] {
				ws.timed = cfg.timed
			}
			if ws.timed == 0 && !ws.storm && !ws.analysis {
				continue
			}
			logf("window %d MiB: %+v", w>>20, ws)
			r, err := runWindow(cfg, ws)
			if err != nil {
				return fmt.Errorf("window %d MiB: %w", w>>20, err)
			}
			windows = append(windows, r)
		}
		if cfg.items["3"] {
			rep.add(snapshotRows(windows)...)
		}
		if cfg.items["5"] {
			rep.add(memoryRows(base, windows)...)
		}
	}
	if cfg.items["4"] {
		bin, unbuilt := buildAnalyzer(cfg)
		if unbuilt != nil {
			logf("analysis: cmd/analyzetime does not build: %v", unbuilt)
		}
		rep.add(analysisRows(runAnalysis(cfg, bin, unbuilt, windows))...)
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchrun:", err)
	os.Exit(1)
}
