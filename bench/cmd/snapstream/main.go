// Command snapstream measures the plan for the snapshot path in
// BENCHMARKS.md: it compares the path as built (Recorder.Snapshot copies the
// flight recorder into a buffer, then DirStore.Save hashes it and writes the
// file) with a prototype that streams the flight recorder straight into the
// store's file through a SHA-256, in one pass and without a buffer. Both run
// alternately, 16 times each, on a full 16 MiB window, while four goroutines
// sleep 1ms in a loop and record how late they wake up: the delay a snapshot
// inflicts on the rest of the process. It prints the medians.
//
//	cd bench && go run ./cmd/snapstream
//
// It runs in about 15 seconds, listens nowhere and writes only to a
// temporary directory, which it removes.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"runtime"
	rt "runtime/trace"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

var sink atomic.Int64

// churn starts and ends goroutines until stop is closed, to fill the
// flight recorder's window with scheduler events.
func churn(stop chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-stop:
			return
		default:
		}
		var w sync.WaitGroup
		for i := 0; i < 50; i++ {
			w.Add(1)
			go func() { defer w.Done(); sink.Add(1); time.Sleep(10 * time.Microsecond) }()
		}
		w.Wait()
	}
}

func main() {
	fr := rt.NewFlightRecorder(rt.FlightRecorderConfig{MinAge: time.Hour, MaxBytes: 16 << 20})
	if err := fr.Start(); err != nil {
		panic(err)
	}
	rec, err := otelfr.Start(otelfr.WithFlightRecorder(fr), otelfr.WithMinInterval(0), otelfr.WithByteBudget(0, 0))
	if err != nil {
		panic(err)
	}
	dir, _ := os.MkdirTemp("", "harn-")
	defer os.RemoveAll(dir)
	store, _ := snapstore.NewDirStore(dir, snapstore.WithMaxCount(3))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go churn(stop, &wg)
	for {
		var c countW
		fr.WriteTo(&c)
		if c >= 15<<20 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	// The paced load: how late 1ms sleeps wake up.
	var lateMu sync.Mutex
	var late []time.Duration
	stop2 := make(chan struct{})
	var wg2 sync.WaitGroup
	for k := 0; k < 4; k++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for {
				select {
				case <-stop2:
					return
				default:
				}
				t0 := time.Now()
				time.Sleep(time.Millisecond)
				d := time.Since(t0) - time.Millisecond
				lateMu.Lock()
				late = append(late, d)
				lateMu.Unlock()
			}
		}()
	}
	var a, b, snapT []time.Duration
	var la, lb []time.Duration
	for r := 0; r < 16; r++ {
		for _, mode := range []string{"buffer+save", "stream"} {
			lateMu.Lock()
			late = late[:0]
			lateMu.Unlock()
			t0 := time.Now()
			if mode == "buffer+save" {
				s, err := rec.Snapshot(context.Background(), "x")
				if err != nil {
					panic(err)
				}
				snapT = append(snapT, time.Since(t0))
				if _, err := store.Save(context.Background(), s); err != nil {
					panic(err)
				}
			} else {
				f, _ := os.CreateTemp(dir, ".tmp-")
				h := sha256.New()
				bw := bufio.NewWriterSize(f, 256<<10)
				if _, err := fr.WriteTo(io.MultiWriter(bw, h)); err != nil {
					panic(err)
				}
				bw.Flush()
				f.Close()
				_ = h.Sum(nil)
				os.Rename(f.Name(), f.Name()+".trace")
				os.Remove(f.Name() + ".trace")
			}
			d := time.Since(t0)
			lateMu.Lock()
			l := slices.Clone(late)
			lateMu.Unlock()
			slices.Sort(l)
			p99 := time.Duration(0)
			if len(l) > 0 {
				p99 = l[len(l)*99/100]
			}
			if mode == "stream" {
				b, lb = append(b, d), append(lb, p99)
			} else {
				a, la = append(a, d), append(la, p99)
			}
			runtime.GC()
			time.Sleep(300 * time.Millisecond)
		}
	}
	close(stop2)
	wg2.Wait()
	med := func(x []time.Duration) time.Duration { slices.Sort(x); return x[len(x)/2] }
	fmt.Printf("buffer+save: Snapshot alone median %v\n", med(snapT))
	fmt.Printf("buffer+save: median %v (wakeup lateness p99 median %v)\nstream:      median %v (wakeup lateness p99 median %v)\n", med(a), med(la), med(b), med(lb))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Println("GCs", ms.NumGC)
}

type countW int64

func (c *countW) Write(p []byte) (int, error) { *c += countW(len(p)); return len(p), nil }
