package analysis_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// Class 4: the span waits for a P; the verdict names where it waited and
// who held the Ps.
func runnableScenarios() []libScenario {
	return []libScenario{
		{"batch jobs that yield, on two Ps", classRunnable, scenarioBatchYield},
		{"JSON renderers on one P", classRunnable, scenarioRenderers},
		{"tight loops on two Ps", classRunnable, scenarioTightLoops},
		{"regexp log scanners on one P", classRunnable, scenarioLogScanners},
		{"burst of one goroutine per event", classRunnable, scenarioEventBurst},
		{"sync.WaitGroup.Go checksum workers on two Ps", classRunnable, scenarioChecksumWorkers},
		{"net-http handler on a server saturated by other requests", classRunnable, scenarioSaturatedServer},
		{"errgroup of gzip compressors on one P", classRunnable, scenarioCompressors},
	}
}

// batch is a CPU-bound background job.
type batch struct{ stop atomic.Bool }

// crunch works in slices of about 20 µs and yields after each, as a
// cooperative batch job does.
//
//go:noinline
func (b *batch) crunch() {
	for !b.stop.Load() {
		for t := time.Now(); time.Since(t) < 20*time.Microsecond; {
		}
		runtime.Gosched()
	}
}

// quote is the span's work, in slices that yield like the batch's.
//
//go:noinline
func quote(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		for t := time.Now(); time.Since(t) < 20*time.Microsecond; {
		}
		runtime.Gosched()
	}
}

// spinners runs n goroutines of f until the returned function is called.
func spinners(n int, f func(stop *atomic.Bool)) (stop func()) {
	var (
		quit atomic.Bool
		wg   sync.WaitGroup
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(&quit)
		}()
	}
	return func() {
		quit.Store(true)
		wg.Wait()
	}
}

func scenarioBatchYield(t *testing.T, p *pipe) truth {
	const procs, jobs = 2, 16
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)
	b := &batch{}
	stop := spinners(jobs, func(*atomic.Bool) { b.crunch() })
	var took time.Duration
	p.span("quote", func(ctx context.Context) { took = timed(func() { quote(libWait) }) })
	b.stop.Store(true)
	stop()
	// Round robin over the Ps at every yield: the span's goroutine gets
	// procs slots in jobs+1, and waits for the others.
	return truth{state: analysis.StateRunnable, dur: took * (jobs + 1 - procs) / (jobs + 1),
		place: "runnable, waiting for a P in analysis_test.quote",
		root:  []string{"16 goroutines in analysis_test.(*batch).crunch ran"}}
}

// renderer renders reports as JSON.
type renderer struct{ report *catalog }

//go:noinline
func (r *renderer) render(stop *atomic.Bool) {
	for !stop.Load() {
		if _, err := json.Marshal(r.report); err != nil {
			panic(err)
		}
	}
}

func scenarioRenderers(t *testing.T, p *pipe) truth {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	c := &catalog{}
	for i := range 200 {
		c.Items = append(c.Items, catalogItem{ID: i, Name: "item", Tags: []string{"a"}})
	}
	r := &renderer{report: c}
	stop := spinners(8, r.render)
	p.span("catalog", func(ctx context.Context) { encodeCatalog(c, libWait) })
	stop()
	// Preempted every 10 ms, the goroutines share the P in slices too
	// coarse for a clock to say how long the span waited: 8 of 9 slices,
	// give or take a few.
	return truth{state: analysis.StateRunnable,
		place: "runnable, waiting for a P in analysis_test.encodeCatalog",
		root:  []string{"8 goroutines in analysis_test.(*renderer).render ran"}}
}

// hash is a tight loop, preempted by the runtime only.
//
//go:noinline
func hash(stop *atomic.Bool) (h uint64) {
	for !stop.Load() {
		for i := range uint64(1000) {
			h = h*31 + i
		}
	}
	return h
}

func scenarioTightLoops(t *testing.T, p *pipe) truth {
	prev := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(prev)
	stop := spinners(12, func(s *atomic.Bool) { hash(s) })
	p.span("price batch", func(ctx context.Context) { priceBatch(libWait) })
	stop()
	// All twelve take turns with the span for the two Ps, though one's
	// slices may, by their phase, all fall beside the span's.
	return truth{state: analysis.StateRunnable,
		place: "runnable, waiting for a P in analysis_test.priceBatch",
		root:  []string{"12 goroutines in analysis_test.hash ran"}}
}

// logScanner matches log lines against an alert rule, as a log shipper's
// pool of workers does, each on its own shard of lines.
type logScanner struct {
	rule  *regexp.Regexp
	lines []string
}

//go:noinline
func (l *logScanner) scan(stop *atomic.Bool) (hits int) {
	for !stop.Load() {
		for _, line := range l.lines {
			if l.rule.MatchString(line) {
				hits++
			}
		}
	}
	return hits
}

// compressPayload gzips a response for d, as a handler that compresses
// its body does.
//
//go:noinline
func compressPayload(payload []byte, d time.Duration) (n int) {
	for start := time.Now(); time.Since(start) < d; {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(payload)
		_ = zw.Close()
		n += buf.Len()
	}
	return n
}

func scenarioLogScanners(t *testing.T, p *pipe) truth {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	l := &logScanner{rule: regexp.MustCompile(`(?i)level=(error|fatal) .*timeout after \d+ms`)}
	for i := range 64 {
		l.lines = append(l.lines, fmt.Sprintf("ts=2026-01-01T00:00:%02d level=info msg=\"request served\" path=/api/v1/items/%d status=200", i%60, i))
	}
	stop := spinners(6, func(s *atomic.Bool) { l.scan(s) })
	payload := bytes.Repeat([]byte(`{"id":1,"name":"item","tags":["a","b"]},`), 256)
	p.span("compress", func(ctx context.Context) { compressPayload(payload, libWait) })
	stop()
	// On one P, preempted every 10 ms, the span gets one slice in seven.
	return truth{state: analysis.StateRunnable,
		place: "runnable, waiting for a P in analysis_test.compressPayload",
		root:  []string{"6 goroutines in analysis_test.(*logScanner).scan ran"}}
}

// event is one message off a queue.
type event struct {
	ID    int               `json:"id"`
	Kind  string            `json:"kind"`
	Attrs map[string]string `json:"attrs"`
}

// handleEvent decodes and re-encodes one event, in its own goroutine.
//
//go:noinline
func handleEvent(raw []byte) {
	for range 100 {
		var ev event
		if err := json.Unmarshal(raw, &ev); err != nil {
			panic(err)
		}
		if _, err := json.Marshal(ev); err != nil {
			panic(err)
		}
	}
}

// dispatch starts a goroutine per event, as a consumer without a worker
// pool does, at most inflight at a time, for n events or until stop is
// set; it waits for the last ones to end.
//
//go:noinline
func dispatch(raw []byte, n, inflight int, stop *atomic.Bool) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, inflight)
	for range n {
		if stop.Load() {
			break
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			handleEvent(raw)
		})
	}
	wg.Wait()
}

func scenarioEventBurst(t *testing.T, p *pipe) truth {
	prev := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(prev)
	raw, err := json.Marshal(event{ID: 7, Kind: "order.created", Attrs: map[string]string{"region": "eu", "tier": "gold", "channel": "web"}})
	require.NoError(t, err)
	// Two consumers of 400 queued events each start a goroutine for
	// every one at once. Preempted, the span's goroutine waits in the
	// global run queue, behind those that overflow the Ps' own queues,
	// and a P looks at it once in 61 goroutines it runs: it waits for
	// most of the queue. (Without an end to the queue, it once waited
	// 5 s.)
	stop := spinners(2, func(s *atomic.Bool) { dispatch(raw, 400, 512, s) })
	p.span("price batch", func(ctx context.Context) { priceBatch(libWait) })
	stop()
	// Hundreds of goroutines, most too short to be preempted: the trace
	// holds no stack of them but their creation, by dispatch through
	// sync.(*WaitGroup).Go. They are named after where those it saw stop
	// ran, handleEvent, or, when it saw none stop, after dispatch. How
	// many ran depends on how fast they run, so the count is not part of
	// the truth.
	return truth{state: analysis.StateRunnable,
		place: "runnable, waiting for a P in analysis_test.priceBatch",
		root:  []string{" goroutines in analysis_test."},
		check: func(d *analysis.Diagnosis) error {
			if len(d.RanWhileRunnable) == 0 {
				return errorf("no goroutines ran while the span waited")
			}
			if f := d.RanWhileRunnable[0].Func; f != "analysis_test.handleEvent" && f != "analysis_test.dispatch" {
				return errorf("the Ps were held by %s, not the event goroutines", f)
			}
			return nil
		}}
}

// checksumBlob hashes a blob over and over, as a scrubber verifying
// stored objects does.
//
//go:noinline
func checksumBlob(blob []byte, stop *atomic.Bool) (sum [32]byte) {
	for !stop.Load() {
		sum = sha256.Sum256(blob)
	}
	return sum
}

func scenarioChecksumWorkers(t *testing.T, p *pipe) truth {
	prev := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(prev)
	blob := bytes.Repeat([]byte("object"), 10<<10)
	var (
		wg   sync.WaitGroup
		quit atomic.Bool
	)
	for range 8 {
		wg.Go(func() { checksumBlob(blob, &quit) })
	}
	p.span("price batch", func(ctx context.Context) { priceBatch(libWait) })
	quit.Store(true)
	wg.Wait()
	return truth{state: analysis.StateRunnable,
		place: "runnable, waiting for a P in analysis_test.priceBatch",
		root:  []string{"8 goroutines in analysis_test.checksumBlob ran"}}
}

// reportAPI renders a report per request, with CPU only.
type reportAPI struct {
	p       *pipe
	report  *catalog
	encodes int         // the work of a request, in encodings of report
	traced  atomic.Bool // the next request is the scenario's span
	spanned chan struct{}
}

// renderN encodes the report n times: a request's fixed amount of work,
// which takes longer as the CPU gets busier.
//
//go:noinline
func (a *reportAPI) renderN(w io.Writer, n int) {
	for range n {
		if err := json.NewEncoder(w).Encode(a.report); err != nil {
			panic(err)
		}
	}
}

//go:noinline
func (a *reportAPI) render(w io.Writer, d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		if err := json.NewEncoder(w).Encode(a.report); err != nil {
			panic(err)
		}
	}
}

func (a *reportAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.traced.CompareAndSwap(true, false) {
		a.p.span("report", func(ctx context.Context) { a.render(io.Discard, libWait) })
		close(a.spanned)
		return
	}
	a.renderN(io.Discard, a.encodes)
}

func scenarioSaturatedServer(t *testing.T, p *pipe) truth {
	prev := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(prev)
	c := &catalog{}
	for i := range 50 {
		c.Items = append(c.Items, catalogItem{ID: i, Name: "item", Tags: []string{"a"}})
	}
	a := &reportAPI{p: p, report: c, spanned: make(chan struct{})}
	start := time.Now()
	a.renderN(io.Discard, 100)
	// About 20 ms of work per request, more than a time slice.
	a.encodes = int(100 * 20 * time.Millisecond / time.Since(start))
	srv := httptest.NewServer(a)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	get := func() {
		resp, err := client.Get(srv.URL)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	// Sixteen clients keep the server's two Ps busy with other reports.
	stop := spinners(16, func(s *atomic.Bool) {
		for !s.Load() {
			get()
		}
	})
	time.Sleep(20 * time.Millisecond)
	a.traced.Store(true)
	get()
	<-a.spanned
	stop()
	// The other requests' handlers run on the server's connections, one
	// goroutine each, as many as the clients opened.
	return truth{state: analysis.StateRunnable,
		place: "runnable, waiting for a P in analysis_test.(*reportAPI).render",
		root:  []string{"goroutines in analysis_test.(*reportAPI).renderN ran"}}
}

// compressFile gzips a file's content, a fixed amount of work.
//
//go:noinline
func compressFile(content []byte) int {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(content)
	_ = zw.Close()
	return buf.Len()
}

// archive compresses files, at most limit at a time, as a backup job
// bounded with errgroup does, until stop is set.
//
//go:noinline
func archive(content []byte, limit int, stop *atomic.Bool) error {
	var g errgroup.Group
	g.SetLimit(limit)
	for !stop.Load() {
		g.Go(func() error {
			compressFile(content)
			return nil
		})
	}
	return g.Wait()
}

func scenarioCompressors(t *testing.T, p *pipe) truth {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	// Bytes with little repetition, slow to compress: each file takes
	// several time slices, so that its goroutine is preempted in
	// compressFile.
	content := make([]byte, 256<<10)
	for i := range content {
		content[i] = byte(i*7919 ^ i>>3)
	}
	stop := spinners(1, func(s *atomic.Bool) { _ = archive(content, 4, s) })
	c := &catalog{}
	for i := range 200 {
		c.Items = append(c.Items, catalogItem{ID: i, Name: "item", Tags: []string{"a"}})
	}
	p.span("catalog", func(ctx context.Context) { encodeCatalog(c, libWait) })
	stop()
	// One goroutine per file, four at a time: how many ran depends on
	// how fast they compress, so the count is not part of the truth.
	return truth{state: analysis.StateRunnable,
		place: "runnable, waiting for a P in analysis_test.encodeCatalog",
		root:  []string{" goroutines in analysis_test.compressFile ran"}}
}
