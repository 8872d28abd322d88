package spanprocessor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// ReasonSignal is the reason of snapshots taken by [Processor.SnapshotOnSignal].
const ReasonSignal = "signal"

// Snapshot takes a snapshot now, on request, labelled with reason, stores
// it, and exports its attachment span: a child of the span in ctx, linked
// to it, or, when ctx carries no span, the root of a trace of its own.
// The recorder's rate limits apply: a refused request returns an error
// matching [otelfr.ErrRateLimited]. After Shutdown it returns
// [otelfr.ErrStopped].
func (p *Processor) Snapshot(ctx context.Context, reason string) (snapstore.Info, error) {
	if p.stopped.Load() {
		return snapstore.Info{}, otelfr.ErrStopped
	}
	info, stage, err := p.take(ctx, reason)
	if err != nil {
		if stage == stageStore {
			p.c.errors[stageStore].Add(1)
		}
		return snapstore.Info{}, err
	}
	parent := trace.SpanContextFromContext(ctx)
	if parent.IsValid() {
		ref := snapstore.SpanRef{TraceID: parent.TraceID().String(), SpanID: parent.SpanID().String(), Reason: reason}
		if err := p.exp.AddSpans(ctx, info.ID, []snapstore.SpanRef{ref}); err != nil {
			p.c.errors[stageStore].Add(1)
			return info, err
		}
		info.Spans = append(info.Spans, ref)
	}
	info, err = p.checksum(ctx, info)
	if err != nil {
		p.c.errors[stageStore].Add(1)
		return info, err
	}
	if err := p.exp.Attach(ctx, info, []exporter.Anomaly{{Parent: parent, Reason: reason}}); err != nil {
		p.c.errors[stageExport].Add(1)
		return info, err
	}
	return info, nil
}

// SnapshotOnSignal takes a snapshot (reason "signal") each time the process
// receives one of sigs, SIGUSR1 if none are given (on Unix; elsewhere sigs
// are required), and logs through log/slog where it is stored, or why it
// was not taken. It stops when ctx ends or when the returned function is
// called, which waits for it to finish.
//
//	stop := proc.SnapshotOnSignal(ctx)
//	defer stop()
//	// kill -USR1 <pid>
func (p *Processor) SnapshotOnSignal(ctx context.Context, sigs ...os.Signal) (stop func()) {
	if len(sigs) == 0 {
		sigs = defaultSignals
	}
	ch := make(chan os.Signal, 1)
	if len(sigs) > 0 {
		signal.Notify(ch, sigs...)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-ch:
				info, err := p.Snapshot(ctx, ReasonSignal)
				if err != nil {
					slog.Warn("otelfr: no snapshot on signal", "signal", sig.String(), "error", err)
					continue
				}
				where := info.Path
				if where == "" {
					where = p.exp.URL(info.ID)
				}
				slog.Info(fmt.Sprintf("otelfr: snapshot on %v: %s", sig, where),
					"id", info.ID, "path", info.Path, "url", p.exp.URL(info.ID), "size", info.Size)
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}
