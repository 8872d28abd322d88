// Command snapstream measures the snapshot path of issue 15 side by side,
// in one process, on a full 16 MiB window (BENCHMARKS.md, "Snapshot path
// against its references"). Each round runs, in a rotating order:
//
//   - idle: nothing, for the lateness reference;
//   - discard: fr.WriteTo(io.Discard), the runtime's floor;
//   - naive: fr.WriteTo(f) into an os.File, the Go blog's code;
//   - pagecache: 16 MiB from memory into a new os.File in 1 MiB writes,
//     the cost of putting the window in the page cache alone;
//   - spin: one goroutine busy for 4 ms, no system calls, for the
//     lateness any burst of work that long causes;
//   - otelfr: a slow span ended through the span processor (coalesce 0,
//     no diagnoser, a DirStore) until WithOnAnomaly reports it stored.
//
// Meanwhile four goroutines sleep 1 ms in a loop and record how late they
// wake: the p99 of those that woke within a fixed 50 ms window from the
// start of each measurement is that round's lateness. Peak RSS (VmHWM,
// reset through /proc/self/clear_refs before each measurement) is read
// after it, and compared with the idle rounds'. Two more modes split the
// otelfr path: wsdiscard is Recorder.WriteSnapshot into io.Discard (the
// pass: the window scan through the staging buffer), wsstore the same
// into DirStore.Create and Commit, without the span processor. It prints
// the medians over the rounds and their ratios.
//
//	cd bench && go run ./cmd/snapstream [-rounds 16]
//
// It runs in about 30 seconds, listens nowhere and writes only to a
// temporary directory, which it removes.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	rt "runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

var sink atomic.Int64

// pageBuf is what the pagecache mode writes: 16 MiB already in memory.
var pageBuf []byte

// churn starts and ends goroutines until stop is closed, to fill the
// flight recorder's window with scheduler events.
func churn(stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		var w sync.WaitGroup
		for range 50 {
			w.Go(func() { sink.Add(1); time.Sleep(10 * time.Microsecond) })
		}
		w.Wait()
	}
}

// wake is one wake-up of a sleeper: when, and how late.
type wake struct {
	at   time.Time
	late time.Duration
}

type sleepers struct {
	mu    sync.Mutex
	wakes []wake
}

func (s *sleepers) run(stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		t0 := time.Now()
		time.Sleep(time.Millisecond)
		now := time.Now()
		s.mu.Lock()
		s.wakes = append(s.wakes, wake{now, now.Sub(t0) - time.Millisecond})
		s.mu.Unlock()
	}
}

// p99 returns the p99 lateness of the wake-ups in [from, to).
func (s *sleepers) p99(from, to time.Time) time.Duration {
	s.mu.Lock()
	var l []time.Duration
	for _, w := range s.wakes {
		if !w.at.Before(from) && w.at.Before(to) {
			l = append(l, w.late)
		}
	}
	s.wakes = s.wakes[:0]
	s.mu.Unlock()
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return l[len(l)*99/100]
}

// statusKiB reads a field of /proc/self/status, in KiB.
func statusKiB(field string) int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// resetPeak resets VmHWM to the current RSS.
func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

type countW int64

func (c *countW) Write(p []byte) (int, error) { *c += countW(len(p)); return len(p), nil }

func main() {
	rounds := flag.Int("rounds", 16, "rounds")
	only := flag.String("only", "", "comma-separated modes to run (default all)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the rounds to this file")
	flag.Parse()
	fr := rt.NewFlightRecorder(rt.FlightRecorderConfig{MinAge: time.Hour, MaxBytes: 16 << 20})
	if err := fr.Start(); err != nil {
		panic(err)
	}
	rec, err := otelfr.Start(otelfr.WithFlightRecorder(fr), otelfr.WithMinInterval(0), otelfr.WithByteBudget(0, 0))
	if err != nil {
		panic(err)
	}
	dir, _ := os.MkdirTemp("", "snapstream-")
	defer os.RemoveAll(dir)
	store, err := snapstore.NewDirStore(dir, snapstore.WithMaxCount(3))
	if err != nil {
		panic(err)
	}
	exp := exporter.New(store, tracetest.NewNoopExporter())
	stored := make(chan spanprocessor.Outcome, 1)
	proc := spanprocessor.New(sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter()), rec, exp,
		spanprocessor.WithCoalesceWindow(0),
		spanprocessor.WithLatencyThreshold(500*time.Millisecond),
		spanprocessor.WithOnAnomaly(func(o spanprocessor.Outcome) { stored <- o }))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
	tracer := tp.Tracer("snapstream")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { churn(stop) })
	for {
		var c countW
		_, _ = fr.WriteTo(&c)
		if c >= 15<<20 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	pageBuf = make([]byte, 16<<20)
	for i := range pageBuf {
		pageBuf[i] = byte(i)
	}
	var sl sleepers
	stopSleep := make(chan struct{})
	for range 4 {
		wg.Go(func() { sl.run(stopSleep) })
	}

	modes := []string{"idle", "discard", "naive", "pagecache", "spin", "otelfr", "wsdiscard", "wsstore"}
	if *only != "" {
		modes = strings.Split(*only, ",")
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			panic(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			panic(err)
		}
		defer pprof.StopCPUProfile()
	}
	type result struct {
		write, late []time.Duration
		peak        []int64
		size        int64
	}
	res := make(map[string]*result)
	for _, m := range append([]string{"idle", "discard", "naive"}, modes...) {
		res[m] = &result{}
	}
	const window = 50 * time.Millisecond
	for r := range *rounds {
		for i := range modes {
			mode := modes[(i+r)%len(modes)]
			runtime.GC()
			time.Sleep(100 * time.Millisecond)
			resetPeak()
			t0 := time.Now()
			var size int64
			switch mode {
			case "discard":
				n, err := fr.WriteTo(io.Discard)
				if err != nil {
					panic(err)
				}
				size = n
			case "naive":
				f, err := os.CreateTemp(dir, "naive-")
				if err != nil {
					panic(err)
				}
				n, err := fr.WriteTo(f)
				if err != nil {
					panic(err)
				}
				f.Close()
				size = n
			case "spin":
				// 4 ms of one goroutine's CPU, no system calls: what any
				// burst of work that long costs the others here.
				for t := time.Now(); time.Since(t) < 4*time.Millisecond; {
					sink.Add(1)
				}
			case "pagecache":
				// The window's size from memory into a new file in 1 MiB
				// writes: the page cache's cost alone.
				f, err := os.CreateTemp(dir, "naive-")
				if err != nil {
					panic(err)
				}
				for off := 0; off < len(pageBuf); off += 1 << 20 {
					if _, err := f.Write(pageBuf[off : off+1<<20]); err != nil {
						panic(err)
					}
				}
				f.Close()
			case "wsdiscard":
				if _, err := rec.WriteSnapshot(context.Background(), io.Discard, "x"); err != nil {
					panic(err)
				}
			case "wsstore":
				w, err := store.Create(context.Background())
				if err != nil {
					panic(err)
				}
				s, err := rec.WriteSnapshot(context.Background(), w, "x")
				if err != nil {
					panic(err)
				}
				if _, err := w.Commit(context.Background(), s); err != nil {
					panic(err)
				}
			case "otelfr":
				_, span := tracer.Start(context.Background(), fmt.Sprintf("slow %d", r),
					trace.WithTimestamp(t0.Add(-600*time.Millisecond)))
				span.End()
				o := <-stored
				if o.SnapshotID == "" {
					panic("no snapshot: " + o.Skipped)
				}
			}
			d := time.Since(t0)
			time.Sleep(time.Until(t0.Add(window)))
			rr := res[mode]
			rr.late = append(rr.late, sl.p99(t0, t0.Add(window)))
			rr.peak = append(rr.peak, statusKiB("VmHWM"))
			if mode != "idle" {
				rr.write = append(rr.write, d)
			}
			if size > 0 {
				rr.size = size
			}
			if mode == "naive" || mode == "pagecache" {
				names, _ := os.ReadDir(dir)
				for _, n := range names {
					if strings.HasPrefix(n.Name(), "naive-") {
						_ = os.Remove(dir + "/" + n.Name())
					}
				}
			}
		}
	}
	close(stopSleep)
	wg.Wait()
	_ = proc.Shutdown(context.Background())
	_ = tp.Shutdown(context.Background())
	_ = rec.Stop(context.Background())

	med := func(x []time.Duration) time.Duration {
		if len(x) == 0 {
			return 0
		}
		x = slices.Clone(x)
		slices.Sort(x)
		return x[len(x)/2]
	}
	medK := func(x []int64) int64 {
		if len(x) == 0 {
			return 0
		}
		x = slices.Clone(x)
		slices.Sort(x)
		return x[len(x)/2]
	}
	idle := med(res["idle"].late)
	if idle == 0 {
		idle = 1
	}
	naive := max(med(res["naive"].write), 1)
	base := medK(res["idle"].peak)
	fmt.Printf("window %.1f MiB, %d rounds, RSS in the idle rounds %.1f MiB\n", float64(res["discard"].size)/(1<<20), *rounds, float64(base)/1024)
	for _, m := range modes {
		rr := res[m]
		late := med(rr.late)
		fmt.Printf("%-9s write median %-9v p99 lateness median %-9v (×%.2f idle)  peak RSS median %+.1f MiB over idle",
			m, med(rr.write).Round(10*time.Microsecond), late.Round(time.Microsecond), float64(late)/float64(idle),
			float64(medK(rr.peak)-base)/1024)
		if m != "idle" {
			fmt.Printf("  ×%.2f naive", float64(med(rr.write))/float64(naive))
		}
		fmt.Println()
	}
}
