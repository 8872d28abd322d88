package analysis_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// More causes of classes 1 and 2, through shapes that the first scenarios
// do not take: deduplicated calls, one-time initialisation, a saturated
// worker and a pipe to a slow consumer.
func probeScenarios() []libScenario {
	return []libScenario{
		{"singleflight follower behind a slow leader", classChain, scenarioSingleflight},
		{"sync.Once behind a slow initialiser", classChain, scenarioOnce},
		{"unbuffered job queue behind a worker on the network", classChain, scenarioBusyWorker},
		{"io.Pipe writer behind a slow reader", classProgram, scenarioPipe},
		{"net/http handler reading a slow upload", classProgram, scenarioSlowUpload},
		{"mutex held by a goroutine starved of CPU", classRunnable, scenarioStarvedHolder},
		{"heap dump on a watchdog", classSTW, scenarioHeapDump},
		{"semaphore acquire until the deadline", classTimeout, scenarioSemaphoreDeadline},
	}
}

// skuCache deduplicates concurrent look-ups of one key.
type skuCache struct{ group singleflight.Group }

//go:noinline
func (c *skuCache) fetch() (any, error) {
	time.Sleep(libWait)
	return 1, nil
}

//go:noinline
func (c *skuCache) lookup(key string) {
	_, _, _ = c.group.Do(key, c.fetch)
}

func scenarioSingleflight(t *testing.T, p *pipe) truth {
	c := &skuCache{}
	leading := make(chan struct{})
	go func() {
		close(leading)
		c.lookup("sku-1")
	}()
	<-leading
	time.Sleep(5 * time.Millisecond) // the leader is in fetch
	var waited time.Duration
	p.span("lookup", func(ctx context.Context) { waited = timed(func() { c.lookup("sku-1") }) })
	return truth{state: analysis.StateBlockedMutex, dur: waited,
		place: "in analysis_test.(*skuCache).lookup",
		root:  []string{"in analysis_test.(*skuCache).fetch", "sleeping"}}
}

// settingsFile is loaded once, by whoever asks first.
type settingsFile struct {
	once sync.Once
	keys int
}

//go:noinline
func (s *settingsFile) load() {
	time.Sleep(libWait)
	s.keys = 3
}

//go:noinline
func (s *settingsFile) get() int {
	s.once.Do(s.load)
	return s.keys
}

func scenarioOnce(t *testing.T, p *pipe) truth {
	s := &settingsFile{}
	first := make(chan struct{})
	go func() {
		close(first)
		s.get()
	}()
	<-first
	time.Sleep(5 * time.Millisecond) // the first caller is in load
	var waited time.Duration
	p.span("settings", func(ctx context.Context) { waited = timed(func() { s.get() }) })
	return truth{state: analysis.StateBlockedMutex, dur: waited,
		place: "blocked on sync.Mutex in analysis_test.(*settingsFile).get",
		root:  []string{"in analysis_test.(*settingsFile).load", "sleeping"}}
}

// slowPeer answers each request after libWait.
func slowPeer(t *testing.T) net.Addr {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					time.Sleep(libWait)
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr()
}

// poolWorker takes jobs one at a time and calls its peer for each.
type poolWorker struct{ conn net.Conn }

//go:noinline
func (w *poolWorker) call() {
	buf := []byte{1}
	_, _ = w.conn.Write(buf)
	_, _ = io.ReadFull(w.conn, buf)
}

//go:noinline
func (w *poolWorker) run(jobs <-chan func()) {
	for job := range jobs {
		w.call()
		job()
	}
}

//go:noinline
func enqueue(jobs chan<- func(), job func()) time.Duration {
	return timed(func() { jobs <- job })
}

func scenarioBusyWorker(t *testing.T, p *pipe) truth {
	conn, err := net.Dial("tcp", slowPeer(t).String())
	require.NoError(t, err)
	defer conn.Close()
	w := &poolWorker{conn: conn}
	jobs := make(chan func())
	defer close(jobs)
	go w.run(jobs)
	jobs <- func() {} // the worker is now calling its peer
	time.Sleep(5 * time.Millisecond)
	var waited time.Duration
	p.span("submit", func(ctx context.Context) { waited = enqueue(jobs, func() {}) })
	return truth{state: analysis.StateBlockedChan, dur: waited,
		place: "blocked on a channel send in analysis_test.enqueue",
		root:  []string{"in analysis_test.(*poolWorker).call", "waiting on the network"}}
}

// archiver streams a report through a pipe to a consumer that reads
// slowly.
//
//go:noinline
func drainSlowly(r io.Reader) {
	buf := make([]byte, 1<<10)
	for {
		time.Sleep(libWait / 5)
		if _, err := r.Read(buf); err != nil {
			return
		}
	}
}

//go:noinline
func writeReport(w io.Writer) {
	chunk := make([]byte, 1<<10)
	for range 5 {
		_, _ = w.Write(chunk)
	}
}

func scenarioPipe(t *testing.T, p *pipe) truth {
	r, w := io.Pipe()
	done := make(chan struct{})
	go func() {
		drainSlowly(r)
		close(done)
	}()
	var waited time.Duration
	p.span("archive", func(ctx context.Context) { waited = timed(func() { writeReport(w) }) })
	w.Close()
	<-done
	return truth{state: analysis.StateBlockedSelect, dur: waited,
		place: "in analysis_test.writeReport",
		root:  []string{"in analysis_test.drainSlowly", "sleeping"}}
}

// uploads stores what clients send it.
type uploads struct {
	p      *pipe
	waited chan time.Duration
}

//go:noinline
func (u *uploads) receive(r io.Reader) time.Duration {
	return timed(func() { _, _ = io.Copy(io.Discard, r) })
}

func (u *uploads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var waited time.Duration
	u.p.span("upload", func(ctx context.Context) { waited = u.receive(r.Body) })
	u.waited <- waited
}

func scenarioSlowUpload(t *testing.T, p *pipe) truth {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := &uploads{p: p, waited: make(chan time.Duration, 1)}
	srv := &http.Server{Handler: u, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	// The headers and half the body now, the rest after libWait: a client
	// on a slow link.
	_, err = io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nhalf")
	require.NoError(t, err)
	time.Sleep(libWait)
	_, err = io.WriteString(conn, "rest")
	require.NoError(t, err)
	waited := <-u.waited
	_, _ = io.Copy(io.Discard, io.LimitReader(conn, 1)) // the response
	return truth{state: analysis.StateBlockedNetwork, dur: waited,
		place: "waiting on the network in analysis_test.(*uploads).receive"}
}

// ledger is updated under its lock by a job that computes as it holds it.
type ledger struct {
	mu      sync.Mutex
	balance int
}

//go:noinline
func (l *ledger) rebalance(d time.Duration, locked chan<- struct{}) {
	l.mu.Lock()
	close(locked)
	// d of work in slices that yield like the batch's around it, so that
	// it waits for a P after each.
	for range d / (20 * time.Microsecond) {
		for t := time.Now(); time.Since(t) < 20*time.Microsecond; {
		}
		runtime.Gosched()
	}
	l.mu.Unlock()
}

//go:noinline
func (l *ledger) read() time.Duration {
	return timed(func() {
		l.mu.Lock()
		_ = l.balance
		l.mu.Unlock()
	})
}

func scenarioStarvedHolder(t *testing.T, p *pipe) truth {
	const procs, jobs = 2, 16
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)
	b := &batch{}
	stop := spinners(jobs, func(*atomic.Bool) { b.crunch() })
	l := &ledger{}
	locked := make(chan struct{})
	// The holder needs 25 ms of CPU; with 16 batch goroutines sharing 2
	// Ps, that takes about 200 ms.
	go l.rebalance(25*time.Millisecond, locked)
	<-locked
	var waited time.Duration
	p.span("balance", func(ctx context.Context) { waited = l.read() })
	b.stop.Store(true)
	stop()
	return truth{state: analysis.StateBlockedMutex, dur: waited,
		place: "blocked on sync.Mutex in analysis_test.(*ledger).read",
		root:  []string{"in analysis_test.(*ledger).rebalance", "goroutines in analysis_test.(*batch).crunch"}}
}

// dumpHeap writes a heap dump, as a watchdog does when memory grows.
//
//go:noinline
func dumpHeap(f *os.File) {
	_, _ = f.Seek(0, 0)
	debug.WriteHeapDump(f.Fd())
}

func scenarioHeapDump(t *testing.T, p *pipe) truth {
	// A heap small enough that each dump leaves the span some time on a
	// P: a dump stops the world for all of its work.
	live := heap(1 << 15)
	defer runtime.KeepAlive(live)
	f, err := os.Create(filepath.Join(t.TempDir(), "heap.dump"))
	require.NoError(t, err)
	defer f.Close()
	n := rounds(libWait / 4) // before the dumps start
	stop := background(func() {
		dumpHeap(f)
		time.Sleep(2 * time.Millisecond)
	})
	// A fixed amount of work, not a wall-clock budget as priceBatch's:
	// a dump longer than the budget would end the span before its work
	// began, and the span would wait for its P outside its own code.
	p.span("price batch", func(ctx context.Context) { priceItems(n) })
	stop()
	running := analysis.StateRunning
	return truth{state: analysis.StateRunnable, orState: &running,
		place: " in analysis_test.priceItems",
		root:  []string{"the world was stopped for", "analysis_test.dumpHeap"}}
}

// priceItems is priceBatch's work for n rounds, however long they take.
//
//go:noinline
func priceItems(n int) {
	sum := 0
	for range n {
		for i := range 1000 {
			sum += i
		}
	}
	priced.Add(int64(sum)) // kept, so that the loop is not optimised away
}

var priced atomic.Int64

// rounds returns how many rounds of priceItems take about d, measured
// now.
func rounds(d time.Duration) int {
	for n := 1000; ; n *= 2 {
		start := time.Now()
		priceItems(n)
		if el := time.Since(start); el >= 20*time.Millisecond {
			return int(float64(n) * float64(d) / float64(el))
		}
	}
}

// exporter sends batches, at most two at a time.
type batchExporter struct{ slots *semaphore.Weighted }

//go:noinline
func (e *batchExporter) send(ctx context.Context) error {
	if err := e.slots.Acquire(ctx, 1); err != nil {
		return err
	}
	e.slots.Release(1)
	return nil
}

func scenarioSemaphoreDeadline(t *testing.T, p *pipe) truth {
	e := &batchExporter{slots: semaphore.NewWeighted(2)}
	require.True(t, e.slots.TryAcquire(2)) // two stuck sends hold both slots
	defer e.slots.Release(2)
	var waited time.Duration
	p.span("export", func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, libWait)
		defer cancel()
		waited = timed(func() { _ = e.send(ctx) })
	})
	return truth{state: analysis.StateBlockedSelect, dur: waited,
		place: "blocked in select in analysis_test.(*batchExporter).send",
		root:  []string{"the context deadline expired after"}}
}
