package bucketstore_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// The outage storm's shape. Snapshots come about as fast as the
// recorder's rate limit allows (measured: 4.5 a second in each pipeline),
// each of about the window's size, so that the outage spools about 300 of
// them in each.
const (
	stormWindow   = 1 << 20 // the flight recorder's MaxBytes
	stormInterval = 200 * time.Millisecond
	stormTick     = 10 * time.Millisecond // a span per pipeline per tick
	stormErrEvery = 4                     // every 4th span fails: an anomaly
	stormWarmup   = 5 * time.Second       // the storm with the bucket up, before and after the outage
	stormOutage   = 60 * time.Second
	// stormRSSBound bounds how far RSS may grow above its steady state
	// (its highest before the outage) during the outage and the drain.
	// The spool is on disk: what the outage may add in memory is the
	// spool's index (a few hundred entries of a few hundred bytes) and,
	// as the spool drains, the garbage of back-to-back uploads in the GC's
	// headroom (the AWS SDK reads each 1 MiB trace into a buffer it grows
	// by doubling). Measured: no growth, and 13 MiB with the race
	// detector; 64 MiB leaves room for a busier machine's GC, and is far
	// below the outage's snapshots held in memory (~340 MiB).
	stormRSSBound = 64 << 20
	// stormDrainWait bounds the wait for the spool to empty after the
	// bucket is back: the uploader's next retry comes within 30 s (its
	// longest backoff), and 300 small uploads take seconds.
	stormDrainWait = 3 * time.Minute
	// stormSmallSpool is the bound of the spool too small for the outage:
	// a few snapshots.
	stormSmallSpool = 8 << 20
)

// stormPipeline is one traced service: a TracerProvider whose spans go
// through a spanprocessor.Processor to an OTLP exporter, with snapshots
// saved in a spooled Store.
type stormPipeline struct {
	name    string
	store   *bucketstore.Store
	saved   *recordingStore
	tp      *sdktrace.TracerProvider
	proc    *spanprocessor.Processor
	metrics *sdkmetric.ManualReader
	started atomic.Int64 // spans started

	mu     sync.Mutex
	linkTo map[string][]string // snapshot ID → the IDs of the spans linked to it
}

// recordingStore records the IDs of the snapshots saved, in order.
type recordingStore struct {
	snapstore.Store
	mu  sync.Mutex
	ids []string
}

func (r *recordingStore) Save(ctx context.Context, snap *otelfr.Snapshot) (snapstore.Info, error) {
	info, err := r.Store.Save(ctx, snap)
	if err == nil {
		r.mu.Lock()
		r.ids = append(r.ids, snap.ID)
		r.mu.Unlock()
	}
	return info, err
}

func (r *recordingStore) taken() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

// newStormPipeline returns a pipeline whose store is at url. With global,
// its TracerProvider is made the global one before the store opens its
// bucket, so that the bucket calls' own spans (and those of the buckets
// opened after) go through it.
func newStormPipeline(t *testing.T, name, url string, spoolBytes int64, rec *otelfr.Recorder, endpoint string, global bool) *stormPipeline {
	p := &stormPipeline{name: name, metrics: sdkmetric.NewManualReader(), linkTo: map[string][]string{}}
	res := resource.NewSchemaless(attribute.String("service.name", name))
	p.tp = sdktrace.NewTracerProvider(sdktrace.WithResource(res))
	t.Cleanup(func() { assert.NoError(t, p.tp.Shutdown(context.Background())) })
	if global {
		globalTracer(t, p.tp)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(p.metrics))
	t.Cleanup(func() { assert.NoError(t, mp.Shutdown(context.Background())) })
	var err error
	p.store, err = bucketstore.Open(t.Context(), url,
		bucketstore.WithSpool(t.TempDir(), spoolBytes), bucketstore.WithMeterProvider(mp))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.store.Close()) })
	p.saved = &recordingStore{Store: p.store}
	otlp, err := otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	p.proc = spanprocessor.New(sdktrace.NewBatchSpanProcessor(otlp), rec,
		exporter.New(p.saved, otlp, exporter.WithBaseURL("https://snapshots.example.com/"), exporter.WithResource(res)),
		spanprocessor.WithOnAnomaly(func(o spanprocessor.Outcome) {
			if o.SnapshotID == "" {
				return
			}
			p.mu.Lock()
			p.linkTo[o.SnapshotID] = append(p.linkTo[o.SnapshotID], o.Span.SpanContext().SpanID().String())
			p.mu.Unlock()
		}))
	p.tp.RegisterSpanProcessor(p.proc)
	return p
}

// span starts and ends one span of the storm, failing every
// stormErrEvery-th.
func (p *stormPipeline) span(ctx context.Context) {
	i := p.started.Add(1)
	_, sp := p.tp.Tracer("storm").Start(ctx, "storm", trace.WithAttributes(attribute.Int64("storm.i", i)))
	if i%stormErrEvery == 0 {
		sp.SetStatus(codes.Error, "failed")
	}
	sp.End()
}

// linked returns, by snapshot ID, the IDs of the spans linked to it.
func (p *stormPipeline) linked() map[string][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.linkTo)
}

// droppedMetric returns the value of otelfr.spool.dropped.
func (p *stormPipeline) droppedMetric(t *testing.T) int64 {
	var rm metricdata.ResourceMetrics
	require.NoError(t, p.metrics.Collect(t.Context(), &rm))
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "otelfr.spool.dropped" {
				return d.DataPoints[0].Value
			}
		}
	}
	t.Fatal("no otelfr.spool.dropped metric")
	return 0
}

// rss returns the process's resident set size, VmRSS.
func rss() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// TestBucketOutageStorm takes the bucket down for a minute during an
// anomaly storm: a real recorder, span processors and exporters over
// spooled stores on a real S3 server (SeaweedFS), exporting over OTLP/gRPC
// to a receiver that counts the spans (spanCounter: otlptest's receiver
// keeps every span, and its memory would grow with the storm). Two
// pipelines share the storm and the outage: "holds", whose spool holds
// the outage, and "full", whose spool of 8 MiB holds a few snapshots. It
// asserts that
//
//   - no snapshot is lost within the spool's bound: every snapshot taken
//     is in the bucket, with every span linked to it, unless the spool
//     counted it as dropped (in Stats and the otelfr.spool.dropped
//     metric); "holds" drops none, "full" drops the oldest first (the
//     snapshots missing are one run, in the order taken) and uploads the
//     rest;
//   - no span is lost: the receiver gets every span started, and one
//     attachment per linked anomaly, and nothing else (the bucket calls'
//     own spans, which gocloud.dev/blob makes with the global
//     TracerProvider, here the "holds" pipeline's, do not come back as
//     anomalies: see TestUploadsBecomeAnomalies);
//   - RSS, sampled every 200 ms, stays within its steady state plus
//     stormRSSBound.
//
// It takes about a minute and a half. It is skipped without a SeaweedFS
// binary, and fails without one in CI (see testutil.StartS3).
func TestBucketOutageStorm(t *testing.T) {
	srv := startS3(t)
	rcv := newSpanCounter(t)
	rec, err := otelfr.Start(otelfr.WithMaxBytes(stormWindow), otelfr.WithMinInterval(stormInterval), otelfr.WithByteBudget(0, 0))
	require.NoError(t, err)
	defer func() { assert.NoError(t, rec.Stop(context.Background())) }()

	holds := newStormPipeline(t, "holds", srv.URL()+"&prefix=holds/", 1<<30, rec, rcv.Endpoint(), true)
	full := newStormPipeline(t, "full", srv.URL()+"&prefix=full/", stormSmallSpool, rec, rcv.Endpoint(), false)
	pipelines := []*stormPipeline{holds, full}

	// The storm, until stopStorm is called.
	stormCtx, stopStorm := context.WithCancel(t.Context())
	var storm sync.WaitGroup
	storm.Go(func() {
		tick := time.NewTicker(stormTick)
		defer tick.Stop()
		for {
			select {
			case <-stormCtx.Done():
				return
			case <-tick.C:
			}
			for _, p := range pipelines {
				p.span(stormCtx)
			}
		}
	})
	defer func() {
		stopStorm()
		storm.Wait()
	}()

	// RSS, the Go heap and the spools' sizes every 200 ms, until
	// stopSampling.
	type sample struct {
		at      time.Duration
		rss     int64
		heap    int64 // Go heap objects, live or not yet swept
		spooled [2]int64
	}
	var samples []sample // read after sampling.Wait
	var sampleErr error
	began := time.Now()
	sampleCtx, stopSampling := context.WithCancel(t.Context())
	var sampling sync.WaitGroup
	sampling.Go(func() {
		for {
			s := sample{at: time.Since(began)}
			var err error
			if s.rss, err = rss(); err != nil {
				sampleErr = err
				return
			}
			heap := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
			metrics.Read(heap)
			s.heap = int64(heap[0].Value.Uint64())
			for i, p := range pipelines {
				s.spooled[i] = p.store.Stats().SpooledBytes
			}
			samples = append(samples, s)
			select {
			case <-sampleCtx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	defer func() {
		stopSampling()
		sampling.Wait()
	}()

	time.Sleep(stormWarmup)
	outageStart := time.Since(began)
	srv.Stop()
	stopped := time.Since(began)
	time.Sleep(time.Until(began.Add(outageStart + stormOutage)))
	srv.Start()
	outageEnd := time.Since(began)
	time.Sleep(stormWarmup)
	stopStorm()
	storm.Wait()
	for _, p := range pipelines {
		require.NoError(t, p.proc.ForceFlush(t.Context()), "the anomalies queued are handled")
	}
	stormEnd := time.Since(began)

	for _, p := range pipelines {
		deadline := time.Now().Add(stormDrainWait)
		for p.store.Stats().Spooled > 0 {
			require.True(t, time.Now().Before(deadline), "%s: the spool did not empty within %v: %+v", p.name, stormDrainWait, p.store.Stats())
			time.Sleep(200 * time.Millisecond)
		}
	}
	drained := time.Since(began)
	stopSampling()
	sampling.Wait()
	require.NoError(t, sampleErr, "reading RSS")

	// RSS: its steady state is its highest before the outage; its peaks
	// while the bucket was down and while the spools drained after.
	var steady, heapSteady, downPeak, drainPeak, heapPeak int64
	var before int
	var peakSpooled [2]int64
	for _, s := range samples {
		switch {
		case s.at < outageStart:
			steady, heapSteady = max(steady, s.rss), max(heapSteady, s.heap)
			before++
		case s.at < outageEnd:
			downPeak, heapPeak = max(downPeak, s.rss), max(heapPeak, s.heap)
		default:
			drainPeak, heapPeak = max(drainPeak, s.rss), max(heapPeak, s.heap)
		}
		for i := range pipelines {
			peakSpooled[i] = max(peakSpooled[i], s.spooled[i])
		}
	}
	t.Logf("outage: stopped at %v (the process exited %v later), started again at %v (%v down); storm until %v; spools empty at %v",
		outageStart.Round(time.Millisecond), (stopped - outageStart).Round(time.Millisecond), outageEnd.Round(time.Millisecond),
		(outageEnd - outageStart).Round(time.Millisecond), stormEnd.Round(time.Millisecond), drained.Round(time.Millisecond))
	t.Logf("RSS: steady %s (highest of %d samples before the outage), peak while down %s (%+.1f MiB), while draining %s (%+.1f MiB); bound steady + %s; Go heap objects: steady %s, peak %s",
		mib(steady), before, mib(downPeak), float64(downPeak-steady)/(1<<20), mib(drainPeak), float64(drainPeak-steady)/(1<<20),
		mib(stormRSSBound), mib(heapSteady), mib(heapPeak))
	assert.LessOrEqual(t, max(downPeak, drainPeak), steady+stormRSSBound, "RSS bounded during the outage and the drain")
	var series []string // RSS and heap at the last sample of every 5 s
	for _, s := range samples {
		i := int(s.at / (5 * time.Second))
		for len(series) <= i {
			series = append(series, "")
		}
		series[i] = fmt.Sprintf("%d/%d", s.rss>>20, s.heap>>20)
	}
	t.Logf("RSS/heap MiB at the end of every 5 s: %s", strings.Join(series, " "))

	// Spans: shut the providers down, which flushes them, then count.
	for _, p := range pipelines {
		require.NoError(t, p.tp.Shutdown(t.Context()))
	}
	want := 0
	for _, p := range pipelines {
		want += int(p.started.Load()) + int(p.proc.Stats().Linked)
	}
	got := rcv.wait(t, want, 30*time.Second)

	var uploadErrors int64
	for i, p := range pipelines {
		t.Run(p.name, func(t *testing.T) {
			st, ps := p.store.Stats(), p.proc.Stats()
			uploadErrors += st.UploadErrors
			taken := p.saved.taken()
			linked := p.linked()
			t.Logf("%s: %d spans started, %d anomalies, %d snapshots (%s), %d linked, skipped %v; spool: peak %s, %d uploaded, %d dropped, %d failed uploads",
				p.name, p.started.Load(), ps.Anomalies, ps.Snapshots, mib(ps.SnapshotBytes), ps.Linked, ps.Skipped,
				mib(peakSpooled[i]), st.Uploaded, st.Dropped, st.UploadErrors)
			assert.Equal(t, int(ps.Snapshots), len(taken), "every snapshot taken was saved")

			// The bucket, as another process's viewer sees it.
			viewer, err := bucketstore.Open(t.Context(), srv.URL()+"&prefix="+p.name+"/")
			require.NoError(t, err)
			defer func() { assert.NoError(t, viewer.Close()) }()
			list, err := viewer.List(t.Context())
			require.NoError(t, err)
			inBucket := map[string]snapstore.Info{}
			for _, in := range list {
				inBucket[in.ID] = in
			}
			var missing []int // indexes in taken
			for j, id := range taken {
				in, ok := inBucket[id]
				if !ok {
					missing = append(missing, j)
					continue
				}
				var spanIDs []string
				for _, s := range in.Spans {
					spanIDs = append(spanIDs, s.SpanID)
				}
				assert.ElementsMatch(t, linked[id], spanIDs, "snapshot %s has the spans linked to it", id)
			}
			for id := range inBucket {
				assert.Contains(t, taken, id, "nothing in the bucket that was not taken")
			}
			assert.Equal(t, int64(len(missing)), st.Dropped, "what is missing was counted as dropped")
			assert.Equal(t, st.Dropped, p.droppedMetric(t), "otelfr.spool.dropped")
			assert.Equal(t, st.Uploaded, int64(len(list)))
			if p == holds {
				assert.Zero(t, st.Dropped, "the spool held the outage")
				// The full spool's uploads may all be cancelled by drops
				// before they fail.
				assert.Positive(t, st.UploadErrors, "uploads failed while the bucket was down")
			} else {
				assert.Positive(t, st.Dropped, "the spool was too small for the outage")
				assert.LessOrEqual(t, peakSpooled[i], int64(stormSmallSpool), "the spool kept within its bound")
				if len(missing) > 0 {
					first, last := missing[0], missing[len(missing)-1]
					assert.Equal(t, len(missing), last-first+1, "the oldest were dropped first: the missing snapshots are one run")
					assert.Greater(t, len(taken)-1, last, "the newest snapshots arrived")
					t.Logf("full: snapshots %d to %d of the %d taken were dropped", first, last, len(taken))
				}
			}

			// Spans: each started one, and one attachment per linked anomaly.
			assert.Equal(t, int(p.started.Load()), got[spanKey{p.name, "storm"}], "every span reached the receiver")
			assert.Equal(t, int(ps.Linked), got[spanKey{p.name, "otelfr.snapshot"}], "one attachment per linked anomaly")
		})
	}
	total := 0
	for k, n := range got {
		total += n
		assert.Contains(t, []string{"storm", "otelfr.snapshot"}, k.name, "no other span (%d of %v)", n, k)
	}
	assert.Equal(t, want, total, "no other span")

	// The uploaders reported the failures: the first of each run, then
	// once a minute.
	reports := handled.Take()
	t.Logf("%d failed uploads, %d reported to otel.Handle", uploadErrors, len(reports))
	assert.NotEmpty(t, reports)
	for _, err := range reports {
		assert.ErrorContains(t, err, "will retry")
	}
}
