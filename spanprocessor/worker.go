package spanprocessor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// The background work is split into three stages, each on a goroutine of
// its own, with bounded queues between them, so that a slow step holds up
// only the stages after it:
//
//   - snapshot (run): collects anomalies for the coalesce window, takes
//     and stores one snapshot for each batch, forwards the batch's spans
//     decorated (linked or skipped), and hands the linked ones on. It is
//     the only stage on the path from an anomaly to its snapshot.
//   - diagnosis (runDiagnoses): diagnoses the linked spans, each within
//     the diagnosis timeout, and reports their outcomes.
//   - export (runExports): fills in the snapshot's SHA-256, records the
//     spans in the store and exports their attachment spans, within the
//     store's and the exporter's timeouts.
//
// A job that finds the next stage's queue full skips that stage's work;
// its spans, already forwarded, are counted in Stats.Dropped.

// stageQueueSize bounds the jobs (one per snapshot batch) waiting between
// two stages.
const stageQueueSize = 16

// job is a batch of spans linked to one stored snapshot, on its way
// through the diagnosis and export stages; or, with ack set, a ForceFlush
// marker, closed once the stages have finished what was before it.
type job struct {
	info  snapstore.Info
	spans []linked
	ack   chan struct{}
}

// linked is a span forwarded linked to a snapshot, with what the later
// stages record and export of it.
type linked struct {
	a       anomaly
	ref     snapstore.SpanRef
	att     exporter.Anomaly
	outcome Outcome
}

// run is the snapshot stage: it collects anomalies for the coalesce
// window, then handles them as one batch. It closes the diagnosis stage's
// queue when it returns.
func (p *Processor) run() {
	defer close(p.diagQ)
	p.postMortem()
	var (
		batch  []anomaly
		timer  *time.Timer
		timerC <-chan time.Time
		w      worker
	)
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
		}
		timerC = nil
	}
	for {
		select {
		case a := <-p.queue:
			batch = append(batch, a)
			if len(batch) >= p.maxBatch {
				stopTimer()
				batch = p.handle(&w, batch)
			} else if timerC == nil {
				timer = time.NewTimer(p.cfg.coalesce)
				timerC = timer.C
			}
		case <-timerC:
			timerC = nil
			batch = p.handle(&w, p.drain(batch))
		case ack := <-p.flush:
			stopTimer()
			batch = p.handle(&w, p.drain(batch))
			p.diagQ <- job{ack: ack} // through the later stages
		case <-p.stop:
			stopTimer()
			// OnEnd calls that saw stopped false before Shutdown set it
			// may still be on their way into the queue.
			for {
				batch = p.handle(&w, p.drain(batch))
				if p.sending.Load() == 0 && len(p.queue) == 0 {
					return
				}
				runtime.Gosched()
			}
		}
	}
}

// drain appends the anomalies already queued to batch.
func (p *Processor) drain(batch []anomaly) []anomaly {
	for {
		select {
		case a := <-p.queue:
			batch = append(batch, a)
		default:
			return batch
		}
	}
}

// worker is the state the background goroutine keeps between batches.
type worker struct {
	last     snapstore.Info // the latest stored snapshot
	haveLast bool
	cooldown cooldowns
}

// handle takes, stores and attaches the snapshot for a batch of anomalies
// and forwards every span in it. It returns batch emptied for reuse.
func (p *Processor) handle(w *worker, batch []anomaly) []anomaly {
	if len(batch) == 0 {
		return batch
	}
	// Spans that ended within the latest snapshot's window share it.
	var reuse, rest []anomaly
	for _, a := range batch {
		if w.haveLast && covers(w.last, a.span) {
			reuse = append(reuse, a)
		} else {
			rest = append(rest, a)
		}
	}
	if len(reuse) > 0 {
		p.deliver(w.last, reuse)
	}

	if len(rest) > 0 {
		now := time.Now()
		trigger := -1
		for i, a := range rest {
			if !w.cooldown.cooling(p.cfg.cooldown, triggerKey(a), now) {
				trigger = i
				break
			}
		}
		if trigger < 0 {
			for _, a := range rest {
				p.skip(a, SkipCooldown)
			}
		} else if info, skip := p.snapshot(rest[trigger].reason); skip != "" {
			for _, a := range rest {
				p.skip(a, skip)
			}
		} else {
			var covered []anomaly
			for _, a := range rest {
				if covers(info, a.span) {
					covered = append(covered, a)
					w.cooldown.fired(p.cfg.cooldown, triggerKey(a), now)
				} else {
					p.skip(a, SkipOutsideWindow)
				}
			}
			w.last, w.haveLast = info, true
			p.deliver(info, covered)
		}
	}
	clear(batch)
	return batch[:0]
}

func triggerKey(a anomaly) string { return a.reason + "\x00" + a.span.Name() }

// snapshot takes and stores a snapshot, within the store timeout. On
// failure it returns the skip reason to put on the spans.
func (p *Processor) snapshot(reason string) (snapstore.Info, string) {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.storeTimeout)
	defer cancel()
	info, stage, err := p.take(ctx, reason)
	if err != nil {
		switch {
		case p.ctx.Err() != nil, errors.Is(err, exporter.ErrShutdown):
			return snapstore.Info{}, SkipStopped // Shutdown ran out of time, or began
		case errors.Is(err, otelfr.ErrByteBudget):
			return snapstore.Info{}, SkipByteBudget
		case errors.Is(err, otelfr.ErrRateLimited):
			return snapstore.Info{}, SkipRateLimited
		case errors.Is(err, otelfr.ErrStopped):
			return snapstore.Info{}, SkipStopped
		}
		p.c.errors[stage].Add(1)
		if stage == stageSnapshot {
			err = fmt.Errorf("snapshot: %w", err)
		}
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: %w", err))
		return snapstore.Info{}, SkipError
	}
	return info, ""
}

// covers reports whether a snapshot's window reaches the span: the span
// ended within it. A span that began before the window (one longer than
// it) is covered too, partly: see partial.
func covers(in snapstore.Info, s sdktrace.ReadOnlySpan) bool {
	return !s.EndTime().Before(in.WindowStart) && !s.EndTime().After(in.WindowEnd)
}

// partial reports whether a covered span began before the window, which
// holds only its tail.
func partial(in snapstore.Info, s sdktrace.ReadOnlySpan) bool {
	return s.StartTime().Before(in.WindowStart)
}

// deliver forwards the anomalies covered by a stored snapshot, decorated
// with it, and hands them to the diagnosis stage, which reports them.
func (p *Processor) deliver(info snapstore.Info, covered []anomaly) {
	if len(covered) == 0 {
		return
	}
	j := job{info: info, spans: make([]linked, 0, len(covered))}
	for _, a := range covered {
		d, url, ok := p.link(info, a)
		if !ok {
			continue // Shutdown gave up on the worker
		}
		sc := a.span.SpanContext()
		ref := snapstore.SpanRef{
			TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(), Name: a.span.Name(),
			Start: a.span.StartTime(), End: a.span.EndTime(), Reason: a.reason,
		}
		if r := a.span.Resource(); r != nil {
			if v, ok := r.Set().Value(serviceNameKey); ok {
				ref.Service = v.AsString()
			}
		}
		j.spans = append(j.spans, linked{
			a:       a,
			ref:     ref,
			att:     exporter.Anomaly{Span: d, Reason: a.reason},
			outcome: Outcome{Span: d, Reason: a.reason, SnapshotID: info.ID, SnapshotURL: url, Partial: partial(info, a.span)},
		})
	}
	if len(j.spans) == 0 {
		return
	}
	select {
	case p.diagQ <- j:
	default:
		// Diagnosis lags: these spans go undiagnosed.
		if p.cfg.diagnoser != nil {
			p.c.dropped[dropDiagnosisQueueFull].Add(int64(len(j.spans)))
		}
		p.reportLinked(j)
		p.toExport(j)
	}
}

// reportLinked reports the outcomes of a job's spans.
func (p *Processor) reportLinked(j job) {
	for _, l := range j.spans {
		p.report(l.outcome)
	}
}

// link forwards the span decorated with the snapshot. It returns the span
// as forwarded and its link, and whether it forwarded it.
func (p *Processor) link(in snapstore.Info, a anomaly) (sdktrace.ReadOnlySpan, string, bool) {
	sid := a.span.SpanContext().SpanID()
	url := p.exp.SpanURL(in.ID, sid)
	d := decorate(a.span,
		otelfr.SnapshotIDKey.String(in.ID),
		otelfr.SnapshotURLKey.String(url),
		// A tracing UI's link template can read the span's attributes,
		// not its ID: with this, each anomalous span of a trace links to
		// its own page.
		otelfr.SnapshotSpanIDKey.String(sid.String()),
		otelfr.SnapshotReasonKey.String(a.reason),
	)
	return d, url, p.forward(d, &p.c.linked)
}

// skip forwards a queued span without a snapshot, marked with why.
func (p *Processor) skip(a anomaly, why string) {
	d := skipped(a, why)
	if p.forward(d, p.c.skipCounter(why)) {
		p.report(Outcome{Span: d, Reason: a.reason, Skipped: why})
	}
}

// skipQueueFull forwards, on OnEnd's goroutine, an anomalous span that
// found the queue full.
func (p *Processor) skipQueueFull(a anomaly) {
	d := skipped(a, SkipQueueFull)
	p.c.skipCounter(SkipQueueFull).Add(1)
	p.next.OnEnd(d)
	if f := p.cfg.onAnomaly; f != nil {
		f(Outcome{Span: d, Reason: a.reason, Skipped: SkipQueueFull}) // not serialized: OnEnd never waits
	}
}

func skipped(a anomaly, why string) sdktrace.ReadOnlySpan {
	return decorate(a.span,
		otelfr.SnapshotReasonKey.String(a.reason),
		SnapshotSkippedKey.String(why),
	)
}

// forward hands a span the worker is done with to the wrapped processor,
// counting it in c, unless Shutdown has given up on the worker and counted
// the span as abandoned. It reports whether it forwarded the span.
func (p *Processor) forward(d sdktrace.ReadOnlySpan, c *atomic.Int64) bool {
	p.fwdMu.Lock()
	if p.gaveUp {
		p.fwdMu.Unlock()
		return false
	}
	p.handled++
	c.Add(1)
	p.fwdMu.Unlock()
	p.next.OnEnd(d)
	return true
}

// report tells WithOnAnomaly's function about o. The snapshot and the
// diagnosis stages both report: their calls are serialized.
func (p *Processor) report(o Outcome) {
	if f := p.cfg.onAnomaly; f != nil {
		p.reportMu.Lock()
		defer p.reportMu.Unlock()
		f(o)
	}
}

// Outcome is what happened to one anomalous span.
type Outcome struct {
	// Span is the span as forwarded, with the otelfr attributes added.
	Span sdktrace.ReadOnlySpan
	// Reason says why the span is anomalous.
	Reason string
	// SnapshotID and SnapshotURL identify the snapshot linked to the span;
	// both are empty when it has none.
	SnapshotID, SnapshotURL string
	// Skipped says why the span has no snapshot (one of the otelfr.Skip*
	// values); it is empty when it has one.
	Skipped string
	// Verdict is the diagnosis of the span in its snapshot, one line, when
	// a Diagnoser is configured (WithDiagnoser) and could explain it;
	// otherwise empty.
	Verdict string
	// Partial is set when the span is linked to a snapshot whose window
	// holds only its tail: it began before the window (it lasted longer
	// than the window reaches back). A Diagnoser then explains that tail.
	Partial bool
}

// serviceNameKey is the resource attribute that names a span's service,
// stored with it as snapstore.SpanRef.Service.
const serviceNameKey = attribute.Key("service.name")
