// Command diskmode measures otelfr's disk mode (otelfr.WithDisk) against
// the memory ring, side by side: each round runs one process per mode, in
// alternating order, under the same paced load of requests, each a span
// (wrapped SDK provider, the span processor) with a little hashing and a
// hand-off to a worker goroutine. Each process reports its CPU time per
// request, its request latency (p50, p99: from each request's scheduled
// start when it was late, else from its start), the bytes it wrote per
// second (/proc/self/io wchar: the ring's segments, in disk mode) and, under the same load, the time of the
// snapshot path: WriteSnapshot into a file, MinAge 10s, MaxBytes 16 MiB;
// and its peak resident set (VmHWM) at the end.
//
//	cd bench && go run ./cmd/diskmode [-rounds 3] [-load 12s] [-rate 2000]
//
// It prints one line per process and the medians per mode; about 20 s per
// process. The rings and snapshots go in a temporary directory, removed at
// the end.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

type result struct {
	Mode       string    `json:"mode"`
	Requests   int       `json:"requests"`
	CPUPerReq  float64   `json:"cpu_ns_per_req"`
	P50        float64   `json:"p50_us"`
	P99        float64   `json:"p99_us"`
	WrittenBps float64   `json:"written_bytes_per_s"`
	SnapMs     []float64 `json:"snap_ms"`
	SnapBytes  []int64   `json:"snap_bytes"`
	PeakRSS    int64     `json:"peak_rss_bytes"`
}

func main() {
	child := flag.String("child", "", "run one process of this mode (memory or disk) and print its result")
	dir := flag.String("dir", "", "the child's scratch directory")
	rounds := flag.Int("rounds", 3, "rounds of one process per mode")
	load := flag.Duration("load", 12*time.Second, "load before the snapshots (the first 2s warm up)")
	rate := flag.Int("rate", 2000, "requests per second")
	snaps := flag.Int("snaps", 5, "snapshots per process, 1s apart, under load")
	flag.Parse()
	if *child != "" {
		r, err := run(*child, *dir, *load, *rate, *snaps)
		check(err)
		check(json.NewEncoder(os.Stdout).Encode(r))
		return
	}
	work, err := os.MkdirTemp("", "otelfr-diskmode-")
	check(err)
	defer os.RemoveAll(work)
	self, err := os.Executable()
	check(err)
	fmt.Printf("load average before: %s", loadavg())
	all := map[string][]result{}
	for i := range *rounds {
		modes := []string{"memory", "disk"}
		if i%2 == 1 {
			slices.Reverse(modes)
		}
		for _, m := range modes {
			d := filepath.Join(work, fmt.Sprintf("%s-%d", m, i))
			check(os.MkdirAll(d, 0o700))
			out, err := exec.Command(self, "-child", m, "-dir", d, "-load", load.String(),
				"-rate", strconv.Itoa(*rate), "-snaps", strconv.Itoa(*snaps)).Output()
			check(err)
			var r result
			check(json.Unmarshal(out, &r))
			all[m] = append(all[m], r)
			fmt.Printf("round %d %-6s %6d req  cpu %6.0f ns/req  p50 %6.0f µs  p99 %6.0f µs  written %7.2f MB/s  peak RSS %3d MiB  snapshot median %5.1f ms (%.1f MiB)\n",
				i, m, r.Requests, r.CPUPerReq, r.P50, r.P99, r.WrittenBps/1e6, r.PeakRSS>>20, median(r.SnapMs), float64(median64(r.SnapBytes))/(1<<20))
			_ = os.RemoveAll(d)
		}
	}
	fmt.Printf("load average after: %s", loadavg())
	fmt.Println("medians over the rounds:")
	for _, m := range []string{"memory", "disk"} {
		var cpu, p50, p99, w, rss, snap, size []float64
		for _, r := range all[m] {
			cpu, p50, p99, w = append(cpu, r.CPUPerReq), append(p50, r.P50), append(p99, r.P99), append(w, r.WrittenBps)
			rss = append(rss, float64(r.PeakRSS)/(1<<20))
			snap = append(snap, r.SnapMs...)
			for _, b := range r.SnapBytes {
				size = append(size, float64(b)/(1<<20))
			}
		}
		fmt.Printf("%-6s cpu %6.0f ns/req  p50 %6.0f µs  p99 %6.0f µs  written %7.2f MB/s  peak RSS %3.0f MiB  snapshot %5.1f ms (%d snapshots, %.1f MiB), %.2f ms/MiB\n",
			m, median(cpu), median(p50), median(p99), median(w)/1e6, median(rss), median(snap), len(snap), median(size), median(snap)/median(size))
	}
}

// run is one process: the recorder in mode, the load, the snapshots.
func run(mode, dir string, load time.Duration, rate, snaps int) (result, error) {
	opts := []otelfr.Option{otelfr.WithMinAge(10 * time.Second), otelfr.WithMaxBytes(16 << 20), otelfr.WithMinInterval(0), otelfr.WithByteBudget(0, time.Hour)}
	if mode == "disk" {
		opts = append(opts, otelfr.WithDisk(filepath.Join(dir, "ring")))
	}
	rec, err := otelfr.Start(opts...)
	if err != nil {
		return result{}, err
	}
	defer rec.Stop(context.Background())
	store, err := snapstore.NewDirStore(filepath.Join(dir, "store"))
	if err != nil {
		return result{}, err
	}
	proc := spanprocessor.New(sdktrace.NewSimpleSpanProcessor(discard{}), rec, exporter.New(store, nil),
		spanprocessor.WithLatencyThreshold(time.Hour))
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
	defer sdk.Shutdown(context.Background())
	tr := otelfr.WrapTracerProvider(sdk).Tracer("diskmode")

	work := make(chan chan struct{})
	for range 2 {
		go func() {
			buf := make([]byte, 16<<10)
			for done := range work {
				sha256.Sum256(buf)
				close(done)
			}
		}()
	}
	defer close(work)
	request := func() {
		ctx, s := tr.Start(context.Background(), "request")
		_, c := tr.Start(ctx, "child")
		done := make(chan struct{})
		work <- done
		<-done
		c.End()
		s.End()
	}

	const clients = 4
	interval := time.Duration(clients) * time.Second / time.Duration(rate)
	start := time.Now().Add(10 * time.Millisecond)
	warm, end := start.Add(2*time.Second), start.Add(load+time.Duration(snaps+1)*time.Second)
	type sample struct{ lat []float64 }
	samples := make([]sample, clients)
	finished := make(chan struct{})
	for c := range clients {
		go func() {
			defer func() { finished <- struct{}{} }()
			next := start.Add(time.Duration(c) * interval / clients)
			for next.Before(end) {
				// From the request's scheduled start when the previous one
				// made it late, else from the wake-up: the timer's slack
				// is the same in both modes, and not the request's.
				began := next
				if time.Now().Before(next) {
					time.Sleep(time.Until(next))
					began = time.Now()
				}
				request()
				if next.After(warm) {
					samples[c].lat = append(samples[c].lat, float64(time.Since(began).Microseconds()))
				}
				next = next.Add(interval)
			}
		}()
	}

	// CPU per request and bytes written, over the load before the
	// snapshots, after the warm-up.
	time.Sleep(time.Until(warm))
	cpu0, w0, t0 := cpuTime(), wchar(), time.Now()
	time.Sleep(time.Until(start.Add(load)))
	cpu1, w1, t1 := cpuTime(), wchar(), time.Now()
	var r result
	r.Mode = mode
	for range snaps {
		f, err := os.Create(filepath.Join(dir, "snapshot.trace"))
		if err != nil {
			return r, err
		}
		began := time.Now()
		s, err := rec.WriteSnapshot(context.Background(), f, "bench")
		took := time.Since(began)
		_ = f.Close()
		if err != nil {
			return r, err
		}
		r.SnapMs = append(r.SnapMs, float64(took.Microseconds())/1000)
		r.SnapBytes = append(r.SnapBytes, s.Size())
		_ = os.Remove(f.Name())
		time.Sleep(time.Second - took)
	}
	for range clients {
		<-finished
	}
	var lat []float64
	for _, s := range samples {
		lat = append(lat, s.lat...)
	}
	slices.Sort(lat)
	r.Requests = len(lat)
	r.P50, r.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	reqs := float64(rate) * t1.Sub(t0).Seconds()
	r.CPUPerReq = float64(cpu1-cpu0) / reqs
	r.WrittenBps = float64(w1-w0) / t1.Sub(t0).Seconds()
	r.PeakRSS = peakRSS()
	return r, nil
}

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// cpuTime is the process's user and system CPU time, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	check(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// wchar is the bytes the process has passed to write(2) and the like.
func wchar() int64 {
	b, err := os.ReadFile("/proc/self/io")
	check(err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			check(err)
			return n
		}
	}
	return 0
}

// peakRSS is the process's peak resident set (/proc/self/status VmHWM),
// in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	check(err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			check(err)
			return kb << 10
		}
	}
	return 0
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return string(b)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

func median64(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "diskmode:", err)
		os.Exit(1)
	}
}
