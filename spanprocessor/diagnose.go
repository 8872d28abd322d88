package spanprocessor

import (
	"context"
	"fmt"
	"io"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Diagnoser explains an anomalous span from the execution trace of the
// snapshot that covers it. Package analysis provides one; it is wired in
// with [WithDiagnoser] so that the trace parser stays out of programs that
// do not want it.
//
// Diagnose runs on the Processor's diagnosis stage, once per linked span,
// with the stored snapshot's trace read back whole (a [ReaderDiagnoser]
// reads only what it needs), after the span has been forwarded: it delays
// neither the span nor the next snapshot. Each call is given
// [WithDiagnosisTimeout] (default [DefaultDiagnosisTimeout]); a call
// still running then is abandoned (its ctx cancelled, its result
// dropped), and the spans that wait for it are counted in
// [Stats].Dropped ("diagnosis_timeout"). The attributes and events it
// returns go on the span's attachment span; verdict is recorded with the
// stored snapshot and reported to [WithOnAnomaly]. An error is reported to
// otel.Handle; the snapshot is kept.
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

// runDiagnoses is the diagnosis stage: it diagnoses the spans of each job
// the snapshot stage hands it, reports their outcomes, and hands the job
// on to the export stage. It returns once the snapshot stage has closed
// its queue, after closing the export stage's.
func (p *Processor) runDiagnoses() {
	defer close(p.exportQ)
	for j := range p.diagQ {
		if j.ack == nil {
			p.diagnose(&j)
			p.reportLinked(j)
		}
		p.toExport(j)
	}
}

// diagResult is one span's diagnosis; i < 0 says the snapshot could not
// be opened.
type diagResult struct {
	i       int
	verdict string
	attrs   []attribute.KeyValue
	events  []sdktrace.Event
	err     error
}

// diagnose diagnoses the spans of j, on a goroutine of its own: the stage
// waits for each span's diagnosis up to the diagnosis timeout, and past it
// leaves the goroutine to finish alone, counting the spans left
// undiagnosed as dropped. While an abandoned diagnosis still runs, no other
// starts: at most one goroutine is ever left behind.
func (p *Processor) diagnose(j *job) {
	if p.cfg.diagnoser == nil || p.ctx.Err() != nil {
		return
	}
	drop := func(from int) {
		p.c.dropped[dropDiagnosisTimeout].Add(int64(len(j.spans) - from))
	}
	if !p.diagIdle.CompareAndSwap(true, false) {
		drop(0) // the one abandoned before is still running
		return
	}
	ctx, cancel := context.WithCancel(p.ctx)
	results := make(chan diagResult, len(j.spans)+1)
	spans := make([]sdktrace.ReadOnlySpan, len(j.spans))
	for i := range j.spans {
		spans[i] = j.spans[i].a.span
	}
	id := j.info.ID
	go func() {
		defer p.diagIdle.Store(true)
		defer cancel()
		d, err := p.diagnoser(ctx, id)
		if err != nil {
			results <- diagResult{i: -1, err: err}
			return
		}
		defer d.close()
		for i, s := range spans {
			if ctx.Err() != nil {
				return
			}
			r := diagResult{i: i}
			r.verdict, r.attrs, r.events, r.err = d.run(ctx, s)
			results <- r
		}
	}()
	timer := time.NewTimer(p.cfg.diagnosisTimeout)
	defer timer.Stop()
	for done := 0; done < len(j.spans); {
		select {
		case r := <-results:
			if r.i < 0 {
				if p.ctx.Err() == nil {
					otel.Handle(fmt.Errorf("otelfr/spanprocessor: reading snapshot %s to diagnose: %w", id, r.err))
				}
				return
			}
			p.applyDiagnosis(j, r)
			done++
			timer.Reset(p.cfg.diagnosisTimeout)
		case <-timer.C:
			cancel()
			drop(done)
			return
		case <-p.ctx.Done(): // Shutdown stopped waiting
			cancel()
			return
		}
	}
}

// applyDiagnosis puts a span's diagnosis on its record and attachment.
func (p *Processor) applyDiagnosis(j *job, r diagResult) {
	l := &j.spans[r.i]
	if r.err != nil {
		if p.ctx.Err() == nil {
			otel.Handle(fmt.Errorf("otelfr/spanprocessor: diagnosing span %s in snapshot %s: %w",
				l.a.span.SpanContext().SpanID(), j.info.ID, r.err))
		}
	}
	l.ref.Verdict, l.ref.Cause = r.verdict, causeOf(r.attrs)
	l.outcome.Verdict = r.verdict
	p.c.causes.count(l.ref.Cause)
	l.att.Attributes, l.att.Events = r.attrs, r.events
}

// diagnosis is the configured diagnoser with the stored snapshot it reads.
type diagnosis struct {
	d    Diagnoser
	r    io.ReadSeekCloser // the snapshot, for a ReaderDiagnoser
	data []byte            // the snapshot, for the others
}

// diagnoser opens the stored snapshot id for the diagnoser: a
// ReaderDiagnoser reads what it needs of it, the others get it loaded.
func (p *Processor) diagnoser(ctx context.Context, id string) (diagnosis, error) {
	d := diagnosis{d: p.cfg.diagnoser}
	r, err := p.exp.Open(ctx, id)
	if err != nil {
		return diagnosis{}, err
	}
	if _, ok := d.d.(ReaderDiagnoser); ok {
		d.r = r
		return d, nil
	}
	defer r.Close()
	if d.data, err = io.ReadAll(r); err != nil {
		return diagnosis{}, err
	}
	return d, nil
}

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
