package spanprocessor

import (
	"context"
	"errors"
	"fmt"
	rt "runtime/trace"
	"sync"
	"sync/atomic"

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
// [otelfr.SnapshotIDKey], [otelfr.SnapshotURLKey] and
// [otelfr.SnapshotReasonKey], forwards it, and exports its attachment span.
// A span that gets no snapshot is forwarded with [otelfr.SnapshotSkippedKey]
// saying why. Every span reaches the wrapped processor exactly once.
type Processor struct {
	next     sdktrace.SpanProcessor
	rec      *otelfr.Recorder
	exp      *exporter.Exporter
	cfg      config
	maxBatch int
	adaptive *adaptive // nil unless WithAdaptiveLatency

	queue chan anomaly
	flush chan chan struct{}
	stop  chan struct{}
	done  chan struct{}
	ctx   context.Context // cancelled when Shutdown runs out of time
	abort context.CancelFunc

	stopped      atomic.Bool
	shutdownOnce sync.Once
	shutdownErr  error

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
	go p.run()
	return p
}

// OnStart forwards to the wrapped processor. While the execution tracer
// runs, and as long as no [otelfr.TracerProvider] wrapper has been created
// in the process (a wrapper logs span identities into tasks), it logs the
// span's identity on the current goroutine (see [otelfr.LogCategory]), so
// that a snapshot can still tell which goroutine served the span.
func (p *Processor) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	if p.stopped.Load() {
		return
	}
	if rt.IsEnabled() && !correlation.Wrapped() {
		// Outside any task: the span's own task does not exist yet.
		correlation.Log(context.Background(), correlation.Start, s.SpanContext())
	}
	p.next.OnStart(parent, s)
}

// OnEnd forwards a normal span to the wrapped processor at once and queues
// an anomalous one for the worker without blocking. Like OnStart, it logs
// the span's identity on the current goroutine when no wrapper does. It
// does nothing after Shutdown.
func (p *Processor) OnEnd(s sdktrace.ReadOnlySpan) {
	if p.stopped.Load() {
		return
	}
	if rt.IsEnabled() && !correlation.Wrapped() {
		correlation.Log(context.Background(), correlation.End, s.SpanContext())
	}
	reason, ok := p.classify(s)
	if !ok {
		p.next.OnEnd(s)
		return
	}
	p.c.anomalies.Add(1)
	select {
	case p.queue <- anomaly{span: s, reason: reason}:
	default:
		p.skip(anomaly{span: s, reason: reason}, otelfr.SkipQueueFull)
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
// exporter and the wrapped processor. If ctx ends first, work in progress
// is abandoned (its spans are still forwarded, marked skipped) and ctx's
// error is returned along with any other. Shutdown is idempotent: calls
// after the first return the first call's result, and OnStart, OnEnd and
// ForceFlush do nothing once it has been called.
func (p *Processor) Shutdown(ctx context.Context) error {
	p.shutdownOnce.Do(func() {
		p.stopped.Store(true)
		close(p.stop)
		var errs []error
		select {
		case <-p.done:
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
			p.abort()
			<-p.done
		}
		p.abort()
		if p.metrics != nil {
			errs = append(errs, p.metrics.Unregister())
		}
		errs = append(errs, p.exp.Shutdown(ctx), p.next.Shutdown(ctx))
		p.shutdownErr = errors.Join(errs...)
	})
	return p.shutdownErr
}
