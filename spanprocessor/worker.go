package spanprocessor

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// Diagnoser explains an anomalous span from the execution trace of the
// snapshot that covers it. Package analysis provides one; it is wired in
// with [WithDiagnoser] so that the trace parser stays out of programs that
// do not want it.
//
// Diagnose runs on the Processor's background worker, once per linked
// span, with the stored snapshot's trace read back whole (a
// [ReaderDiagnoser] reads only what it needs), before the span is
// forwarded: it delays anomalous spans (never
// normal ones) by its running time. The attributes and events it returns
// go on the span's attachment span; verdict is recorded with the stored
// snapshot. An error is reported to otel.Handle; the snapshot is kept.
//
// A Diagnoser that can group the spans it explains returns, among attrs,
// the grouping key as the attribute otelfr.diagnosis.cause
// (analysis.DiagnosisCauseKey): it is stored with the span
// (snapstore.SpanRef.Cause) and counted in the metric otelfr.causes.
type Diagnoser interface {
	Diagnose(ctx context.Context, trace []byte, span sdktrace.ReadOnlySpan) (verdict string, attrs []attribute.KeyValue, events []sdktrace.Event, err error)
}

// ReaderDiagnoser is implemented by Diagnosers that read a snapshot's
// trace from the store themselves, only the parts a span needs, as
// analysis.Diagnoser does. The Processor then hands them the stored
// snapshot, opened, instead of loading its whole trace for Diagnose.
type ReaderDiagnoser interface {
	Diagnoser
	DiagnoseReader(ctx context.Context, r io.ReadSeeker, span sdktrace.ReadOnlySpan) (verdict string, attrs []attribute.KeyValue, events []sdktrace.Event, err error)
}

// run is the background worker: it collects anomalies for the coalesce
// window, then handles them as one batch.
func (p *Processor) run() {
	defer close(p.done)
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
			close(ack)
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

// snapshot takes and stores a snapshot. On failure it returns the skip
// reason to put on the spans.
func (p *Processor) snapshot(reason string) (snapstore.Info, string) {
	info, stage, err := p.take(p.ctx, reason)
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

// deliver diagnoses the anomalies covered by a stored snapshot, records
// them with it, forwards them decorated, and exports their attachments.
// A diagnoser reads the snapshot's trace back from the store: the
// snapshot went there without a copy held in memory.
func (p *Processor) deliver(info snapstore.Info, covered []anomaly) {
	if len(covered) == 0 {
		return
	}
	atts := make([]exporter.Anomaly, len(covered))
	refs := make([]snapstore.SpanRef, len(covered))
	diagnose := p.diagnoser(info.ID)
	defer diagnose.close()
	for i, a := range covered {
		atts[i] = exporter.Anomaly{Span: a.span, Reason: a.reason}
		sc := a.span.SpanContext()
		refs[i] = snapstore.SpanRef{
			TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(), Name: a.span.Name(),
			Start: a.span.StartTime(), End: a.span.EndTime(), Reason: a.reason,
		}
		if r := a.span.Resource(); r != nil {
			if v, ok := r.Set().Value(serviceNameKey); ok {
				refs[i].Service = v.AsString()
			}
		}
		if diagnose.ok() && p.ctx.Err() == nil {
			verdict, attrs, events, err := diagnose.run(p.ctx, a.span)
			if err != nil {
				otel.Handle(fmt.Errorf("otelfr/spanprocessor: diagnosing span %s in snapshot %s: %w", sc.SpanID(), info.ID, err))
			}
			refs[i].Verdict, refs[i].Cause = verdict, causeOf(attrs)
			p.c.causes.count(refs[i].Cause)
			atts[i].Attributes, atts[i].Events = attrs, events
		}
	}
	if err := p.exp.AddSpans(p.ctx, info.ID, refs); err != nil && !p.shuttingDown(err) {
		p.c.errors[stageStore].Add(1)
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: recording spans of snapshot %s: %w", info.ID, err))
	}
	for i, a := range covered {
		atts[i].Span = p.link(info, a, refs[i].Verdict)
	}
	if err := p.exp.Attach(p.ctx, info, atts); err != nil && !p.shuttingDown(err) {
		p.c.errors[stageExport].Add(1)
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: %w", err))
	}
}

// shuttingDown reports whether err comes from Shutdown: the exporter is
// shut down, or Shutdown cancelled the work in progress.
func (p *Processor) shuttingDown(err error) bool {
	return errors.Is(err, exporter.ErrShutdown) || p.ctx.Err() != nil
}

// diagnosis is the configured diagnoser with the stored snapshot it reads.
type diagnosis struct {
	d    Diagnoser
	r    io.ReadSeekCloser // the snapshot, for a ReaderDiagnoser
	data []byte            // the snapshot, for the others
}

// diagnoser opens the stored snapshot id for the diagnoser, if any: a
// ReaderDiagnoser reads what it needs of it, the others get it loaded.
func (p *Processor) diagnoser(id string) diagnosis {
	d := diagnosis{d: p.cfg.diagnoser}
	if d.d == nil {
		return d
	}
	r, err := p.exp.Open(p.ctx, id)
	if err != nil {
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: reading snapshot %s to diagnose: %w", id, err))
		return diagnosis{}
	}
	if _, ok := d.d.(ReaderDiagnoser); ok {
		d.r = r
		return d
	}
	defer r.Close()
	if d.data, err = io.ReadAll(r); err != nil {
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: reading snapshot %s to diagnose: %w", id, err))
		return diagnosis{}
	}
	return d
}

func (d diagnosis) ok() bool { return d.r != nil || d.data != nil }

func (d diagnosis) run(ctx context.Context, span sdktrace.ReadOnlySpan) (string, []attribute.KeyValue, []sdktrace.Event, error) {
	if d.r != nil {
		return d.d.(ReaderDiagnoser).DiagnoseReader(ctx, d.r, span)
	}
	return d.d.Diagnose(ctx, d.data, span)
}

func (d diagnosis) close() {
	if d.r != nil {
		_ = d.r.Close()
	}
}

// link forwards the span decorated with the snapshot, and returns it as
// forwarded. verdict is the diagnoser's, if any.
func (p *Processor) link(in snapstore.Info, a anomaly, verdict string) sdktrace.ReadOnlySpan {
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
	if p.forward(d, &p.c.linked) {
		p.report(Outcome{Span: d, Reason: a.reason, SnapshotID: in.ID, SnapshotURL: url, Verdict: verdict, Partial: partial(in, a.span)})
	}
	return d
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
	p.report(Outcome{Span: d, Reason: a.reason, Skipped: SkipQueueFull})
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

func (p *Processor) report(o Outcome) {
	if f := p.cfg.onAnomaly; f != nil {
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
