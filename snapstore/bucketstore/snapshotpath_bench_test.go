package bucketstore_test

import (
	"context"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// The snapshot path benchmark's window and pace: the default window, and
// one anomaly every 400 ms, as item 3 of BENCHMARKS.md times it.
const (
	pathWindow  = 16 << 20
	pathSpacing = 400 * time.Millisecond
)

// BenchmarkSnapshotPath measures the snapshot path as the span processor
// runs it, from an anomalous span's End to WithOnAnomaly reporting it
// stored and forwarded (its checksum, store record and attachment follow
// on the processor's export stage), with a real recorder holding a full
// 16 MiB window, streamed into the store,
// in pipelines that differ in their store only:
//
//   - dir: a snapstore.DirStore on the local disk;
//   - s3: a spooled Store over a real S3 server (SeaweedFS), whose uploads
//     run in the background, in this process and the server's, on the same
//     cores;
//   - refused: a spooled Store over an S3 endpoint that refuses
//     connections (nothing listens), so every upload fails;
//   - hung: a spooled Store over an endpoint that accepts connections and
//     never answers, so every upload hangs until its timeout.
//
// Each op is one round: an anomaly in each pipeline in turn, the order
// rotating from round to round, pathSpacing apart. It reports the medians
// over the rounds of the path (PIPELINE-ms) and of the store's Commit
// alone (PIPELINE-save-ms), and the median of the per-round ratios to dir
// (PIPELINE/dir). Run it with a count of rounds:
//
//	go test -run '^$' -bench BenchmarkSnapshotPath -benchtime 20x ./snapstore/bucketstore
func BenchmarkSnapshotPath(b *testing.B) {
	srv := startS3(b)
	b.Logf("load average before: %s", loadavg())

	rec, err := otelfr.Start(otelfr.WithMaxBytes(pathWindow), otelfr.WithMinAge(time.Hour),
		otelfr.WithMinInterval(0), otelfr.WithByteBudget(0, 0))
	require.NoError(b, err)
	b.Cleanup(func() { assert.NoError(b, rec.Stop(context.Background())) })
	fillWindow(b, rec)

	s3URL := func(endpoint string) string {
		return "s3://otelfr-bench?endpoint=http://" + endpoint + "&region=us-east-1&use_path_style=true"
	}
	spooled := func(url string) snapstore.Store {
		s, err := bucketstore.Open(b.Context(), url, bucketstore.WithSpool(b.TempDir(), 64<<20))
		require.NoError(b, err)
		b.Cleanup(func() { assert.NoError(b, s.Close()) })
		return s
	}
	dir, err := snapstore.NewDirStore(b.TempDir(), snapstore.WithMaxCount(4))
	require.NoError(b, err)
	s3 := spooled(srv.URL()).(*bucketstore.Store)
	refused := spooled(s3URL(unusedAddr(b)))
	hung := spooled(s3URL(silentServer(b)))

	pipelines := []*pathPipeline{
		newPathPipeline(b, "dir", dir, rec),
		newPathPipeline(b, "s3", s3, rec),
		newPathPipeline(b, "refused", refused, rec),
		newPathPipeline(b, "hung", hung, rec),
	}
	round := 0
	for b.Loop() {
		for i := range pipelines {
			p := pipelines[(round+i)%len(pipelines)]
			p.anomaly(b)
			time.Sleep(pathSpacing)
		}
		round++
	}
	b.StopTimer()

	b.ReportMetric(0, "ns/op") // a round is mostly the spacing
	dirPath := pipelines[0].path
	for _, p := range pipelines {
		b.ReportMetric(median(p.path), p.name+"-ms")
		b.ReportMetric(median(p.save), p.name+"-save-ms")
		if p.name != "dir" {
			ratios := make([]float64, len(p.path))
			for i := range p.path {
				ratios[i] = p.path[i] / dirPath[i]
			}
			b.ReportMetric(median(ratios), p.name+"/dir")
		}
		b.Logf("%s: path %v ms, Save %v ms; %d of %d anomalies found the previous snapshot still spooled",
			p.name, rounded(p.path), rounded(p.save), p.busy, len(p.path))
	}
	st := s3.Stats()
	b.Logf("s3 spool: %+v; load average after: %s", st, loadavg())

	// The failing pipelines' uploaders report their first failure, then
	// one a minute.
	for _, err := range handled.Take() {
		assert.ErrorContains(b, err, "will retry")
	}
}

// pathPipeline is a TracerProvider whose spans go through a span processor
// that stores snapshots in one store.
type pathPipeline struct {
	name   string
	spool  *bucketstore.Store // nil for dir
	busy   int                // anomalies that found a snapshot still spooled
	tp     *sdktrace.TracerProvider
	saves  chan time.Duration
	stored chan time.Time
	path   []float64 // ms, per round
	save   []float64
}

func newPathPipeline(b *testing.B, name string, store snapstore.Store, rec *otelfr.Recorder) *pathPipeline {
	p := &pathPipeline{name: name, saves: make(chan time.Duration, 16), stored: make(chan time.Time, 16)}
	p.spool, _ = store.(*bucketstore.Store)
	proc := spanprocessor.New(sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter()), rec,
		exporter.New(timedStore{store, p.saves}, tracetest.NewNoopExporter(), exporter.WithBaseURL("https://snapshots.example.com/")),
		spanprocessor.WithCoalesceWindow(0),
		spanprocessor.WithOnAnomaly(func(spanprocessor.Outcome) { p.stored <- time.Now() }))
	p.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
	b.Cleanup(func() { assert.NoError(b, p.tp.Shutdown(context.Background())) })
	return p
}

// anomaly ends a failed span and waits for its snapshot to be stored.
func (p *pathPipeline) anomaly(b *testing.B) {
	if p.spool != nil && p.spool.Stats().Spooled > 0 {
		p.busy++
	}
	_, sp := p.tp.Tracer("bench").Start(b.Context(), "request")
	sp.SetStatus(codes.Error, "failed")
	start := time.Now()
	sp.End()
	select {
	case at := <-p.stored:
		p.path = append(p.path, float64(at.Sub(start))/1e6)
	case <-time.After(time.Minute):
		b.Fatalf("%s: no outcome within a minute", p.name)
	}
	p.save = append(p.save, float64(<-p.saves)/1e6)
}

// timedStore reports how long each Save, or Commit, took. It is the
// snapstore.Creator and Checksummer that the stores it wraps are, so that
// the processor streams snapshots into it unhashed, as into them.
type timedStore struct {
	snapstore.Store
	took chan<- time.Duration
}

func (t timedStore) Create(ctx context.Context) (snapstore.SnapshotWriter, error) {
	w, err := t.Store.(snapstore.Creator).Create(ctx)
	if err != nil {
		return nil, err
	}
	return timedWriter{w, t.took}, nil
}

func (t timedStore) SetSHA256(ctx context.Context, id, sum string) error {
	return t.Store.(snapstore.Checksummer).SetSHA256(ctx, id, sum)
}

type timedWriter struct {
	snapstore.SnapshotWriter
	took chan<- time.Duration
}

func (w timedWriter) Commit(ctx context.Context, snap *otelfr.Snapshot) (snapstore.Info, error) {
	start := time.Now()
	info, err := w.SnapshotWriter.Commit(ctx, snap)
	w.took <- time.Since(start)
	return info, err
}

func (t timedStore) Save(ctx context.Context, snap *otelfr.Snapshot) (snapstore.Info, error) {
	start := time.Now()
	info, err := t.Store.Save(ctx, snap)
	t.took <- time.Since(start)
	return info, err
}

// fillWindow churns goroutines until the recorder's window holds 90% of
// pathWindow.
func fillWindow(b *testing.B, rec *otelfr.Recorder) {
	start := time.Now()
	ctx, stop := context.WithCancel(b.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			var w sync.WaitGroup
			for range 50 {
				w.Go(func() { time.Sleep(10 * time.Microsecond) })
			}
			w.Wait()
		}
	})
	defer func() {
		stop()
		wg.Wait()
	}()
	for {
		snap, err := rec.Snapshot(b.Context(), "fill")
		require.NoError(b, err)
		if snap.Size() >= pathWindow*9/10 {
			b.Logf("window: %.1f MiB after %v", float64(snap.Size())/(1<<20), time.Since(start).Round(time.Millisecond))
			return
		}
		require.Less(b, time.Since(start), 2*time.Minute, "the window did not fill")
		time.Sleep(500 * time.Millisecond)
	}
}

// unusedAddr returns a loopback address nothing listens on.
func unusedAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	addr := l.Addr().String()
	require.NoError(b, l.Close())
	return addr
}

// silentServer listens on loopback until b ends, reading what its
// connections send and never answering.
func silentServer(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	closed := false
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				_ = c.Close()
			} else {
				conns = append(conns, c)
				wg.Go(func() { _, _ = io.Copy(io.Discard, c) })
			}
			mu.Unlock()
		}
	})
	b.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rounded(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(int(x*10+0.5)) / 10
	}
	return out
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
