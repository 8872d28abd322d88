package analysis_test

import (
	"context"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// libWait is how long each scenario's cause holds its span up.
const libWait = 250 * time.Millisecond

// Class 1: the real cause is one or more goroutines away.
func chainScenarios() []libScenario {
	return []libScenario{
		{"errgroup fan-out, one shard asleep", classChain, scenarioErrgroupShard},
		{"worker blocked on a mutex held by a sleeper", classChain, scenarioTwoHops},
		{"three hops to a system call", classChain, scenarioThreeHops},
		{"worker waiting on a slow downstream", classChain, scenarioHopNetwork},
		{"sync.Cond waiting for a slow producer", classChain, scenarioCond},
		{"RWMutex reader behind a writer", classChain, scenarioRWMutex},
		{"fan-in behind a CPU-bound shard", classChain, scenarioFanIn},
	}
}

// fanout queries shards in parallel.
type fanout struct{ slow int }

//go:noinline
func (f *fanout) shard(ctx context.Context, i int) error {
	if i == f.slow {
		time.Sleep(libWait)
	}
	return ctx.Err()
}

//go:noinline
func (f *fanout) query(ctx context.Context) (waited time.Duration) {
	g, ctx := errgroup.WithContext(ctx)
	for i := range 4 {
		g.Go(func() error { return f.shard(ctx, i) })
	}
	return timed(func() { _ = g.Wait() })
}

func scenarioErrgroupShard(t *testing.T, p *pipe) truth {
	f := &fanout{slow: 2}
	var waited time.Duration
	p.span("fanout", func(ctx context.Context) { waited = f.query(ctx) })
	return truth{state: analysis.StateBlockedMutex, dur: waited,
		place: "blocked on sync.WaitGroup in analysis_test.(*fanout).query",
		root:  []string{"in analysis_test.(*fanout).shard", "sleeping"}}
}

// store is compacted by a goroutine that holds its lock while it sleeps;
// a pipeline's worker writes to it for its clients.
type store struct {
	mu   sync.Mutex
	rows int
}

//go:noinline
func (s *store) compact(locked chan<- struct{}) {
	s.mu.Lock()
	close(locked)
	time.Sleep(libWait)
	s.mu.Unlock()
}

//go:noinline
func (s *store) insert() {
	s.mu.Lock()
	s.rows++
	s.mu.Unlock()
}

// writer serves insert requests from a channel.
//
//go:noinline
func writer(s *store, reqs <-chan chan struct{}) {
	for reply := range reqs {
		s.insert()
		close(reply)
	}
}

//go:noinline
func submitInsert(reqs chan<- chan struct{}) time.Duration {
	reply := make(chan struct{})
	reqs <- reply
	return timed(func() { <-reply })
}

func scenarioTwoHops(t *testing.T, p *pipe) truth {
	s := &store{}
	reqs := make(chan chan struct{})
	defer close(reqs)
	go writer(s, reqs)
	locked := make(chan struct{})
	go s.compact(locked)
	<-locked
	var waited time.Duration
	p.span("insert", func(ctx context.Context) { waited = submitInsert(reqs) })
	return truth{state: analysis.StateBlockedChan, dur: waited,
		place: "blocked on a channel receive in analysis_test.submitInsert",
		root:  []string{"in analysis_test.(*store).compact", "sleeping"},
		check: chainEnds(2, "analysis_test.(*store).compact", analysis.StateBlockedSleep)}
}

// stage forwards a request to the next stage and waits for its answer.
//
//go:noinline
func stage(in <-chan chan struct{}, next chan<- chan struct{}) {
	for reply := range in {
		r := make(chan struct{})
		next <- r
		<-r
		close(reply)
	}
}

// fsync stands for a stage that waits in the kernel.
//
//go:noinline
func fsync(in <-chan chan struct{}) {
	for reply := range in {
		ts := syscall.NsecToTimespec(libWait.Nanoseconds())
		for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
		}
		close(reply)
	}
}

//go:noinline
func commit(first chan<- chan struct{}) time.Duration {
	reply := make(chan struct{})
	first <- reply
	return timed(func() { <-reply })
}

func scenarioThreeHops(t *testing.T, p *pipe) truth {
	a, b, c := make(chan chan struct{}), make(chan chan struct{}), make(chan chan struct{})
	defer close(a)
	go stage(a, b)
	go stage(b, c)
	go func() {
		fsync(c)
	}()
	defer close(b)
	defer close(c)
	var waited time.Duration
	p.span("commit", func(ctx context.Context) { waited = commit(a) })
	return truth{state: analysis.StateBlockedChan, dur: waited,
		place: "blocked on a channel receive in analysis_test.commit",
		root:  []string{"in analysis_test.fsync", "in system calls"},
		check: chainEnds(3, "analysis_test.fsync", analysis.StateSyscall)}
}

// slowServer answers each 4-byte request with "pong" after delay.
func slowServer(t *testing.T, delay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 4)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					time.Sleep(delay)
					if _, err := c.Write([]byte("pong")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// downstream calls a remote service over one connection.
//
//go:noinline
func downstream(conn net.Conn, in <-chan chan struct{}) {
	buf := make([]byte, 4)
	for reply := range in {
		if _, err := conn.Write([]byte("ping")); err == nil {
			_, _ = io.ReadFull(conn, buf)
		}
		close(reply)
	}
}

//go:noinline
func lookupPrice(reqs chan<- chan struct{}) time.Duration {
	reply := make(chan struct{})
	reqs <- reply
	return timed(func() { <-reply })
}

func scenarioHopNetwork(t *testing.T, p *pipe) truth {
	conn, err := net.Dial("tcp", slowServer(t, libWait))
	require.NoError(t, err)
	defer conn.Close()
	reqs := make(chan chan struct{})
	defer close(reqs)
	go downstream(conn, reqs)
	var waited time.Duration
	p.span("price", func(ctx context.Context) { waited = lookupPrice(reqs) })
	return truth{state: analysis.StateBlockedChan, dur: waited,
		place: "blocked on a channel receive in analysis_test.lookupPrice",
		root:  []string{"in analysis_test.downstream", "waiting on the network"},
		check: chainEnds(1, "analysis_test.downstream", analysis.StateBlockedNetwork)}
}

// queue hands items from a producer to consumers under a sync.Cond.
type queue struct {
	mu    sync.Mutex
	cond  *sync.Cond
	items []int
}

//go:noinline
func (q *queue) produce() {
	time.Sleep(libWait) // an item that takes long to make
	q.mu.Lock()
	q.items = append(q.items, 1)
	q.mu.Unlock()
	q.cond.Broadcast()
}

//go:noinline
func (q *queue) take() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 {
		q.cond.Wait()
	}
	v := q.items[0]
	q.items = q.items[1:]
	return v
}

func scenarioCond(t *testing.T, p *pipe) truth {
	q := &queue{}
	q.cond = sync.NewCond(&q.mu)
	var waited time.Duration
	p.span("take", func(ctx context.Context) {
		go q.produce()
		waited = timed(func() { q.take() })
	})
	return truth{state: analysis.StateBlockedCond, dur: waited,
		place: "waiting on sync.Cond in analysis_test.(*queue).take",
		root:  []string{"woken by goroutine", "in analysis_test.(*queue).produce", "sleeping"}}
}

// config is read often and reloaded rarely, slowly, under its write lock.
type settings struct {
	mu   sync.RWMutex
	vals map[string]string
}

//go:noinline
func (s *settings) reload(locked chan<- struct{}) {
	s.mu.Lock()
	close(locked)
	time.Sleep(libWait) // reading the new values from disk
	s.vals = map[string]string{"k": "v"}
	s.mu.Unlock()
}

//go:noinline
func (s *settings) get(k string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.vals[k]
}

func scenarioRWMutex(t *testing.T, p *pipe) truth {
	s := &settings{}
	locked := make(chan struct{})
	go s.reload(locked)
	<-locked
	var waited time.Duration
	p.span("settings", func(ctx context.Context) { waited = timed(func() { s.get("k") }) })
	return truth{state: analysis.StateBlockedMutex, dur: waited,
		place: "blocked on sync.RWMutex in analysis_test.(*settings).get",
		root:  []string{"released by goroutine", "in analysis_test.(*settings).reload", "sleeping"}}
}

// crunchShard is a shard of a computation; one of them is large.
//
//go:noinline
func crunchShard(i int, out chan<- int) {
	if i == 0 {
		spin(libWait)
	}
	out <- i
}

//go:noinline
func gather(n int) time.Duration {
	out := make(chan int)
	for i := range n {
		go crunchShard(i, out)
	}
	return timed(func() {
		for range n {
			<-out
		}
	})
}

func scenarioFanIn(t *testing.T, p *pipe) truth {
	var waited time.Duration
	p.span("gather", func(ctx context.Context) { waited = gather(4) })
	return truth{state: analysis.StateBlockedChan, dur: waited,
		place: "blocked on a channel receive in analysis_test.gather",
		root:  []string{"in analysis_test.crunchShard", "running"}}
}

// chainEnds checks that a diagnosis's wait chain has hops hops, and ends
// at a goroutine in fn, mostly in state.
func chainEnds(hops int, fn string, state analysis.State) func(d *analysis.Diagnosis) error {
	return func(d *analysis.Diagnosis) error {
		if len(d.Chain) != hops {
			return errorf("chain %+v: want %d hops", d.Chain, hops)
		}
		if h := d.Chain[hops-1]; h.State != state || (h.Func != fn && h.Place != fn) {
			return errorf("chain ends at %+v: want %s, %v", h, fn, state)
		}
		return nil
	}
}
