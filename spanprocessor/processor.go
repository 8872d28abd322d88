package spanprocessor

import (
	"context"
	"errors"
	"fmt"
	rt "runtime/trace"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/internal/correlation"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// Reasons the built-in triggers give; a [Predicate] gives its own.
const (
	ReasonLatency = "latency"
	ReasonError   = "error"
)

// Processor is an [sdktrace.SpanProcessor] that watches finishing spans for
// anomalies, snapshots the flight recorder when one occurs, and forwards
// every span to the processor it wraps.
//
// A normal span is forwarded at once, on the caller's goroutine, without
// allocating or locking. An anomalous span is queued for a background
// worker, which takes one snapshot for all anomalies that arrive within the
// coalesce window (or reuses the latest snapshot if it already covers the
// span), stores it, decorates each covered span with
// [otelfr.SnapshotIDKey], [otelfr.SnapshotURLKey],
// [otelfr.SnapshotSpanIDKey] and [otelfr.SnapshotReasonKey], and forwards
// it; then, on later stages with bounded queues between them, diagnoses it
// (see [WithDiagnoser]), reports it (see [WithOnAnomaly]), hashes the
// snapshot, records the span in the store and exports its attachment
// span. A slow diagnosis, store or span exporter never delays the next
// snapshot or the forwarding of anomalous spans: each of those steps is
// bounded by its timeout ([WithDiagnosisTimeout], [WithStoreTimeout],
// exporter.WithTimeout), and work that finds a stage's queue full is
// dropped and counted ([Stats].Dropped). A span that gets no snapshot is
// forwarded with [SnapshotSkippedKey] saying why. Every span reaches
// the wrapped processor exactly once, unless Shutdown has begun (see
// [Processor.Shutdown]: such spans are counted in [Stats]).
type Processor struct {
	next     sdktrace.SpanProcessor
	rec      *otelfr.Recorder
	exp      *exporter.Exporter
	cfg      config
	maxBatch int
	adaptive *adaptive // nil unless WithAdaptiveLatency

	queue   chan anomaly
	diagQ   chan job // snapshot stage → diagnosis stage
	exportQ chan job // diagnosis stage → export stage
	flush   chan chan struct{}
	stop    chan struct{}
	done    chan struct{}   // closed when the last stage has finished
	ctx     context.Context // cancelled when Shutdown stops waiting for snapshots
	abort   context.CancelFunc
	long    longNames

	stopped      atomic.Bool
	sending      atomic.Int64 // OnEnd calls between their stopped check and their send
	shutdownOnce sync.Once
	shutdownErr  error

	// fwdMu orders the worker's forwarding against Shutdown giving up on
	// it, so that each queued anomaly is forwarded or counted abandoned,
	// never both. It is never held while calling the wrapped processor.
	fwdMu   sync.Mutex
	handled int64 // queued anomalies the worker forwarded
	gaveUp  bool  // Shutdown gave up: the worker forwards nothing more

	takeMu sync.Mutex
	taking *taking // the snapshot being taken and stored, if any

	diagIdle atomic.Bool // no diagnosis is running
	reportMu sync.Mutex  // serializes the stages' WithOnAnomaly calls

	c       counters
	metrics metric.Registration // nil when registration failed
}

var _ sdktrace.SpanProcessor = (*Processor)(nil)

type anomaly struct {
	span   sdktrace.ReadOnlySpan
	reason string
}

// New returns a Processor that forwards spans to next, takes snapshots
// with rec and stores and attaches them with exp. None may be nil.
//
// The Processor owns next and exp: its Shutdown shuts both down. It does
// not stop rec, which may serve other callers.
func New(next sdktrace.SpanProcessor, rec *otelfr.Recorder, exp *exporter.Exporter, opts ...Option) *Processor {
	cfg := newConfig(opts)
	ctx, cancel := context.WithCancel(context.Background())
	p := &Processor{
		next:     next,
		rec:      rec,
		exp:      exp,
		cfg:      cfg,
		maxBatch: cfg.queueSize,
		queue:    make(chan anomaly, cfg.queueSize),
		diagQ:    make(chan job, stageQueueSize),
		exportQ:  make(chan job, stageQueueSize),
		flush:    make(chan chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		ctx:      ctx,
		abort:    cancel,
	}
	if cfg.adaptive != nil {
		p.adaptive = newAdaptive(*cfg.adaptive)
	}
	if reg, err := p.registerMetrics(cfg.meterProvider); err != nil {
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: registering metrics: %w", err))
	} else {
		p.metrics = reg
	}
	p.diagIdle.Store(true)
	go p.run()
	go p.runDiagnoses()
	go p.runExports()
	return p
}

// OnStart forwards to the wrapped processor. While the execution tracer
// runs, and as long as no [otelfr.TracerProvider] wrapper has been created
// in the process (a wrapper logs span identities into tasks), it logs the
// span's identity on the current goroutine (see [otelfr.LogCategory]), so
// that a snapshot can still tell which goroutine served the span.
//
// While the execution tracer runs, a span whose name is longer than 1 KiB
// is renamed to its first 1 KiB after the wrapped processor's OnStart: the
// SDK names the span's runtime/trace task after it next, and the runtime
// kills the process on a task name of 64 KiB or more. OnEnd gives the span
// its name back before forwarding it, for up to 4,096 such spans in flight
// at once; span processors registered beside this one see the short name.
func (p *Processor) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	if p.stopped.Load() {
		return
	}
	if !rt.IsEnabled() {
		p.next.OnStart(parent, s)
		return
	}
	if !correlation.Wrapped() {
		// Outside any task: the span's own task does not exist yet.
		correlation.Log(context.Background(), correlation.Start, s.SpanContext())
	}
	p.next.OnStart(parent, s)
	p.long.bound(s)
}

// OnEnd forwards a normal span to the wrapped processor at once and queues
// an anomalous one for the worker without blocking. Like OnStart, it logs
// the span's identity on the current goroutine when no wrapper does.
// After Shutdown has begun it forwards nothing and counts the span in
// [Stats].DroppedAfterShutdown.
func (p *Processor) OnEnd(s sdktrace.ReadOnlySpan) {
	if p.stopped.Load() {
		p.c.droppedAfterShutdown.Add(1)
		return
	}
	if rt.IsEnabled() && !correlation.Wrapped() {
		correlation.Log(context.Background(), correlation.End, s.SpanContext())
	}
	s = p.long.restore(s)
	reason, ok := p.classify(s)
	if !ok {
		p.next.OnEnd(s)
		return
	}
	// Shutdown waits for sending to fall to zero once stopped is set, so a
	// span that sees stopped false below is in the queue before the worker
	// looks at it for the last time.
	p.sending.Add(1)
	if p.stopped.Load() {
		p.sending.Add(-1)
		p.c.droppedAfterShutdown.Add(1)
		return
	}
	p.c.anomalies.Add(1)
	a := anomaly{span: s, reason: reason}
	select {
	case p.queue <- a:
		p.c.queued.Add(1)
		p.sending.Add(-1)
	default:
		p.sending.Add(-1)
		p.skipQueueFull(a)
	}
}

// classify runs the triggers in order: error conditions, latency (a per-name
// threshold, else the adaptive trigger if on, else the global threshold),
// predicate.
//
// This is the hot path of every span. On an SDK span each ReadOnlySpan
// accessor copies the whole span snapshot (about 400 bytes: the SDK's
// methods have value receivers), which costs more than the checks
// themselves; so each accessor is called at most once, and only when a
// configured trigger needs it.
func (p *Processor) classify(s sdktrace.ReadOnlySpan) (string, bool) {
	if p.cfg.errorConds != 0 {
		if reason, ok := p.classifyError(s); ok {
			return reason, true
		}
	}
	if reason, ok := p.classifyLatency(s); ok {
		return reason, true
	}
	if p.cfg.predicate != nil {
		return p.cfg.predicate(s)
	}
	return "", false
}

// classifyLatency runs the latency trigger: a per-name threshold, else the
// adaptive trigger if on, else the global threshold.
func (p *Processor) classifyLatency(s sdktrace.ReadOnlySpan) (string, bool) {
	threshold, named, name := p.cfg.latency, false, ""
	if p.cfg.perName != nil {
		name = s.Name()
		threshold, named = p.cfg.perName[name]
		if !named {
			threshold = p.cfg.latency
		}
	}
	if p.adaptive != nil && !named {
		return ReasonAdaptiveLatency, p.adaptive.observe(s, name)
	}
	if threshold > 0 && s.EndTime().Sub(s.StartTime()) >= threshold {
		return ReasonLatency, true
	}
	return "", false
}

// ForceFlush handles the anomalies waiting for the worker at once, without
// waiting for the coalesce window, and then flushes the wrapped processor.
// It returns ctx's error if ctx ends first.
func (p *Processor) ForceFlush(ctx context.Context) error {
	if p.stopped.Load() {
		return nil
	}
	// A select with several ready cases picks one at random: an ended ctx
	// must win over a worker that happens to be ready.
	if err := ctx.Err(); err != nil {
		return err
	}
	ack := make(chan struct{})
	select {
	case p.flush <- ack:
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.next.ForceFlush(ctx)
}

// Shutdown handles the anomalies still queued, then shuts down the
// exporter and the wrapped processor, and returns by ctx's deadline
// whatever they are doing.
//
// ctx's time is shared out: the worker's stages have the first half of it
// to snapshot, forward, diagnose and export the anomalies still queued;
// then snapshots, diagnoses, stores and exports in progress are
// cancelled, and the worker has half of what is left to forward the rest,
// marked skipped ("stopped"). If it
// has not finished by then (the wrapped processor's OnEnd blocks, say),
// Shutdown gives up on it: the anomalies it has not forwarded are counted
// in [Stats].Abandoned, and the error returned wraps ctx's error, or
// [context.DeadlineExceeded] if ctx has not ended yet. The exporter's and
// the wrapped processor's Shutdown then share the time that remains; one
// that is still running when ctx ends is left to finish on its own. A ctx
// without a deadline lets the worker take as long as it needs, until ctx
// is cancelled.
//
// Shutdown is idempotent: calls after the first return the first call's
// result. OnStart, OnEnd and ForceFlush do nothing once it has been
// called; spans handed to OnEnd from then on are counted in
// [Stats].DroppedAfterShutdown.
func (p *Processor) Shutdown(ctx context.Context) error {
	p.shutdownOnce.Do(func() { p.shutdownErr = p.shutdown(ctx) })
	return p.shutdownErr
}

func (p *Processor) shutdown(ctx context.Context) error {
	p.stopped.Store(true)
	close(p.stop)
	var errs []error
	finished := p.waitWorker(ctx)
	p.abort()
	if !finished {
		finished = p.waitWorker(ctx)
	}
	if !finished {
		n := p.giveUp()
		cause := ctx.Err()
		if cause == nil {
			cause = context.DeadlineExceeded
		}
		errs = append(errs, fmt.Errorf("otelfr/spanprocessor: shutdown: %d anomalous spans abandoned: %w", n, cause))
	}
	if p.metrics != nil {
		errs = append(errs, p.metrics.Unregister())
	}
	var wg sync.WaitGroup
	var expErr, nextErr error
	wg.Go(func() { expErr = within(ctx, p.exp.Shutdown) })
	wg.Go(func() { nextErr = within(ctx, p.next.Shutdown) })
	wg.Wait()
	return errors.Join(append(errs, expErr, nextErr)...)
}

// waitWorker waits for the worker to finish, for half of the time left
// before ctx's deadline, or until ctx ends if it has none. It reports
// whether the worker finished.
func (p *Processor) waitWorker(ctx context.Context) bool {
	var timeout <-chan time.Time
	if deadline, ok := ctx.Deadline(); ok {
		t := time.NewTimer(time.Until(deadline) / 2)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-p.done:
		return true
	case <-ctx.Done():
	case <-timeout:
	}
	select { // the worker may have finished meanwhile
	case <-p.done:
		return true
	default:
		return false
	}
}

// giveUp stops the worker's forwarding and counts the queued anomalies it
// has not forwarded as abandoned; it returns how many.
func (p *Processor) giveUp() int64 {
	p.fwdMu.Lock()
	defer p.fwdMu.Unlock()
	p.gaveUp = true
	n := p.c.queued.Load() - p.handled
	p.c.abandoned.Add(n)
	return n
}

// within returns f(ctx)'s result, or ctx's error as soon as ctx ends: a
// Shutdown that ignores its ctx is left running.
func within(ctx context.Context, f func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
