package analysis_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// Class 6: a span longer than the snapshot's window is linked, partial,
// and its covered tail diagnosed.
func partialScenarios() []libScenario {
	return []libScenario{
		{"nightly export longer than the window", classPartial, scenarioLongExport},
		{"reindex on the CPU longer than the window", classPartial, scenarioLongReindex},
		{"net-http long polls longer than the window", classPartial, scenarioLongPoll},
		{"external tool run longer than the window", classPartial, scenarioLongTool},
		{"waves of WaitGroup pollers longer than the window", classPartial, scenarioLongPollers},
		{"cache reads behind a refresher, longer than the window", classPartial, scenarioLongRefresh},
	}
}

// exportBatch sleeps between the pages of a long export, as a rate-limited
// job does.
//
//go:noinline
func exportBatch(pages int, pause time.Duration) {
	for range pages {
		time.Sleep(pause)
	}
}

func scenarioLongExport(t *testing.T, p *pipe) truth {
	// A window of about a second: the runtime cuts a generation about
	// every second, and drops those older than MinAge.
	p.restart(otelfr.WithMinAge(100 * time.Millisecond))
	p.span("nightly export", func(ctx context.Context) { exportBatch(25, 100*time.Millisecond) })
	return truth{state: analysis.StateBlockedSleep, status: analysis.StatusPartial,
		place: "sleeping in analysis_test.exportBatch",
		root:  []string{"(partial: began before the window"}}
}

// longSpan is how long the scenarios' spans take: more than the window of
// about a second that windowed gives.
const longSpan = 2500 * time.Millisecond

// windowed restarts p's pipeline with a window of about a second: the
// runtime cuts a generation about every second, and drops those older
// than MinAge.
func windowed(p *pipe) { p.restart(otelfr.WithMinAge(100 * time.Millisecond)) }

// reindex rebuilds a search index, on the CPU only.
//
//go:noinline
func reindex(d time.Duration) (n int) {
	terms := map[string]int{}
	for start := time.Now(); time.Since(start) < d; n++ {
		terms[strconv.Itoa(n%4096)]++
	}
	return len(terms)
}

func scenarioLongReindex(t *testing.T, p *pipe) truth {
	windowed(p)
	p.span("reindex", func(ctx context.Context) { reindex(longSpan) })
	return truth{state: analysis.StateRunning, status: analysis.StatusPartial,
		place: "running in analysis_test.reindex",
		root:  []string{"(partial: began before the window"}}
}

// feedClient long-polls a feed for changes.
type feedClient struct {
	c   *http.Client
	url string
}

//go:noinline
func (f *feedClient) poll(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return err
	}
	resp, err := f.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

func scenarioLongPoll(t *testing.T, p *pipe) truth {
	windowed(p)
	// The feed answers when it has changes: every 200 ms.
	const every = 200 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(every):
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	f := &feedClient{c: srv.Client(), url: srv.URL}
	// A sync job follows the feed, one long poll after the other.
	p.span("sync feed", func(ctx context.Context) {
		for range longSpan / every {
			require.NoError(t, f.poll(ctx))
		}
	})
	// As with a slow handler: the client waits in the transport for its
	// connection's reader, which waits on the network.
	return truth{state: analysis.StateBlockedSelect, status: analysis.StatusPartial,
		place: "blocked in select in analysis_test.(*feedClient).poll",
		root:  []string{"in http.(*persistConn).readLoop", "waiting on the network"}}
}

// backup runs an external tool and waits for it, as a job that shells out
// to a dump utility does.
//
//go:noinline
func backup(ctx context.Context, d time.Duration) error {
	return exec.CommandContext(ctx, "sleep", strconv.FormatFloat(d.Seconds(), 'f', 3, 64)).Run()
}

func scenarioLongTool(t *testing.T, p *pipe) truth {
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("no sleep command")
	}
	windowed(p)
	p.span("backup", func(ctx context.Context) { require.NoError(t, backup(ctx, longSpan)) })
	// os.(*Process).Wait waits for the child in a blocking system call.
	return truth{state: analysis.StateSyscall, status: analysis.StatusPartial,
		place: "in system calls in analysis_test.backup",
		root:  []string{"(partial: began before the window"}}
}

// pollStatus polls a remote job's status until it is done, as a worker of
// a batch does.
//
//go:noinline
func pollStatus(polls int) {
	for range polls {
		time.Sleep(100 * time.Millisecond)
	}
}

// awaitJobs starts a poller per job and waits for them all.
//
//go:noinline
func awaitJobs(jobs, polls int) {
	var wg sync.WaitGroup
	for range jobs {
		wg.Go(func() { pollStatus(polls) })
	}
	wg.Wait()
}

func scenarioLongPollers(t *testing.T, p *pipe) truth {
	windowed(p)
	// A batch runs its jobs in waves of three, each polled twice.
	p.span("batch", func(ctx context.Context) {
		for range longSpan / (200 * time.Millisecond) {
			awaitJobs(3, 2)
		}
	})
	return truth{state: analysis.StateBlockedMutex, status: analysis.StatusPartial,
		place: "blocked on sync.WaitGroup in analysis_test.awaitJobs",
		root:  []string{"in analysis_test.pollStatus", "sleeping"}}
}

// priceCache is refreshed under its lock, which readers take too: a
// refresher that holds it while it fetches makes every read wait.
type priceCache struct {
	mu     sync.Mutex
	prices map[string]int
}

// refresh fetches the prices, 100 ms a round trip, holding the lock, until
// stop is set.
//
//go:noinline
func (c *priceCache) refresh(stop *atomic.Bool) {
	for !stop.Load() {
		c.mu.Lock()
		time.Sleep(100 * time.Millisecond) // the fetch, under the lock
		c.prices["sku"]++
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

//go:noinline
func (c *priceCache) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prices[key]
}

// warm reads keys, each after a short pause of its own work.
//
//go:noinline
func (c *priceCache) warm(keys int) {
	for range keys {
		c.get("sku")
		time.Sleep(5 * time.Millisecond)
	}
}

func scenarioLongRefresh(t *testing.T, p *pipe) truth {
	windowed(p)
	c := &priceCache{prices: map[string]int{}}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.refresh(&stop)
	}()
	p.span("warm cache", func(ctx context.Context) { c.warm(int(longSpan / (100 * time.Millisecond))) })
	stop.Store(true)
	<-done
	return truth{state: analysis.StateBlockedMutex, status: analysis.StatusPartial,
		place: "blocked on sync.Mutex in analysis_test.(*priceCache).get",
		root:  []string{"in analysis_test.(*priceCache).refresh", "sleeping"}}
}

// schema is migrated under its lock, which readers take too.
type schema struct {
	mu      sync.Mutex
	version int
}

//go:noinline
func (s *schema) migrate(steps int, locked chan<- struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(locked)
	for range steps {
		time.Sleep(100 * time.Millisecond) // a step's statement, on the server
		s.version++
	}
}

//go:noinline
func (s *schema) current() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// TestPartialWaitOlderThanWindow pins the diagnosis of a span that waits
// once, from before the window to its end: the trace records neither the
// wait's reason nor its stack, only who ended it. The unlock that did
// tells the primitive, and the place is left out rather than taken from a
// stack of another time (it was the test's own wait for the pipeline,
// after the span, and the state "blocked").
func TestPartialWaitOlderThanWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("the span lasts longer than the window")
	}
	p := newPipe(t)
	windowed(p)
	s := &schema{}
	locked := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.migrate(int(longSpan/(100*time.Millisecond)), locked)
	}()
	<-locked
	p.span("schema version", func(ctx context.Context) { s.current() })
	<-done
	r := p.result()
	t.Logf("verdict: %s", r.verdict)
	assert.Equal(t, analysis.StatusPartial, r.status)
	assert.Contains(t, r.verdict, "blocked on sync.Mutex")
	assert.Contains(t, r.verdict, "released by goroutine")
	assert.Contains(t, r.verdict, "in analysis_test.(*schema).migrate")
	assert.Contains(t, r.verdict, "sleeping")
	assert.NotContains(t, r.verdict, "analysis_test.(*pipe)")
	assert.Greater(t, r.buckets[analysis.StateBlockedMutex], r.buckets[analysis.StateBlockedOther])
}
