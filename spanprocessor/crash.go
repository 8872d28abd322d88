package spanprocessor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// CrashDiagnoser is implemented by Diagnosers that explain a crash
// snapshot, read from the store, as analysis.Diagnoser does by listing
// the spans open at the crash. The attributes and events it returns go on
// the crash's attachment span.
type CrashDiagnoser interface {
	DiagnoseCrash(ctx context.Context, r io.ReadSeeker) (attrs []attribute.KeyValue, events []sdktrace.Event, err error)
}

// postMortem stores and exports the crash snapshot of the recorder, if it
// found one at its start (a disk ring left by a process that did not stop
// cleanly: [otelfr.Recorder.WriteCrashSnapshot]), and once it is stored
// removes the crash's ring: one that could not be stored stays for the
// next start. The worker does it first, once; anomalies queue meanwhile. The attachment span is the root
// of a trace of its own: no span of this process is involved.
func (p *Processor) postMortem() {
	if !p.rec.HasCrash() {
		return
	}
	w, err := p.exp.Create(p.ctx)
	if err != nil {
		if !p.shuttingDown(err) {
			p.c.errors[stageStore].Add(1)
			otel.Handle(fmt.Errorf("otelfr/spanprocessor: storing the crash snapshot: %w", err))
		}
		return
	}
	snap, err := p.rec.WriteCrashSnapshot(p.ctx, w)
	if err != nil {
		w.Abort()
		if !errors.Is(err, otelfr.ErrNoCrash) && !errors.Is(err, otelfr.ErrStopped) && !p.shuttingDown(err) {
			p.c.errors[stageSnapshot].Add(1)
			otel.Handle(fmt.Errorf("otelfr/spanprocessor: crash snapshot: %w", err))
		}
		return
	}
	info, err := w.Commit(p.ctx, snap)
	if err != nil {
		if !p.shuttingDown(err) {
			p.c.errors[stageStore].Add(1)
			otel.Handle(fmt.Errorf("otelfr/spanprocessor: storing crash snapshot %s: %w", snap.ID, err))
		}
		return
	}
	p.c.snapshots.Add(1)
	p.c.snapshotBytes.Add(info.Size)
	// Stored: the crash's ring may go. Until then a failure above left it
	// for the next start to store again.
	if err := p.rec.RemoveCrash(); err != nil {
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: %w", err))
	}

	a := exporter.Anomaly{Reason: otelfr.ReasonCrash}
	if out := snap.CrashOutput; out != "" {
		a.Attributes = append(a.Attributes, otelfr.SnapshotCrashOutputKey.String(truncate(out, otelfr.MaxCrashOutputAttribute)))
	}
	if attrs, events := p.diagnoseCrash(info); attrs != nil || events != nil {
		a.Attributes, a.Events = append(a.Attributes, attrs...), events
	}
	// Streamed into the store unhashed, as every snapshot is: the sum of
	// what was stored goes on the attachment.
	if info, err = p.checksum(p.ctx, info); err != nil && !p.shuttingDown(err) {
		p.c.errors[stageStore].Add(1)
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: %w", err))
	}
	if err := p.exp.Attach(p.ctx, info, []exporter.Anomaly{a}); err != nil && !p.shuttingDown(err) {
		p.c.errors[stageExport].Add(1)
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: %w", err))
	}
}

// diagnoseCrash runs the diagnoser over the stored crash snapshot, if it
// is a CrashDiagnoser.
func (p *Processor) diagnoseCrash(info snapstore.Info) ([]attribute.KeyValue, []sdktrace.Event) {
	d, ok := p.cfg.diagnoser.(CrashDiagnoser)
	if !ok {
		return nil, nil
	}
	r, err := p.exp.Open(p.ctx, info.ID)
	if err != nil {
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: reading crash snapshot %s to diagnose: %w", info.ID, err))
		return nil, nil
	}
	defer r.Close()
	attrs, events, err := d.DiagnoseCrash(p.ctx, r)
	if err != nil {
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: diagnosing crash snapshot %s: %w", info.ID, err))
	}
	return attrs, events
}

// truncate returns s cut to at most n bytes, at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
