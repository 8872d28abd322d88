package spanprocessor

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// toExport hands j to the export stage. A ForceFlush marker waits for
// room; a job that finds the queue full is dropped, its spans counted
// ("export_queue_full"): they are forwarded already, and only their
// records in the store and their attachment spans are lost.
func (p *Processor) toExport(j job) {
	if j.ack != nil {
		p.exportQ <- j
		return
	}
	select {
	case p.exportQ <- j:
	default:
		p.c.dropped[dropExportQueueFull].Add(int64(len(j.spans)))
	}
}

// runExports is the export stage: for each job, it fills in the
// snapshot's SHA-256, records the spans in the store and exports their
// attachment spans. It closes done once the diagnosis stage has closed
// its queue: the last stage to finish.
func (p *Processor) runExports() {
	defer close(p.done)
	for j := range p.exportQ {
		if j.ack != nil {
			close(j.ack)
			continue
		}
		refs := make([]snapstore.SpanRef, len(j.spans))
		atts := make([]exporter.Anomaly, len(j.spans))
		for i, l := range j.spans {
			refs[i], atts[i] = l.ref, l.att
		}
		p.export(p.ctx, j.info, refs, atts)
	}
}

// export records refs with the stored snapshot info describes and exports
// the attachment spans atts, after filling in the snapshot's SHA-256 (see
// [Processor.checksum]). The store's steps are bounded by the store
// timeout, the export by the exporter's. Failures are counted and
// reported, except those of a Shutdown in progress.
func (p *Processor) export(ctx context.Context, info snapstore.Info, refs []snapstore.SpanRef, atts []exporter.Anomaly) {
	info, err := p.checksum(ctx, info)
	if err != nil && !p.shuttingDown(err) {
		p.c.errors[stageStore].Add(1)
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: %w", err))
	}
	sctx, cancel := context.WithTimeout(ctx, p.cfg.storeTimeout)
	err = p.exp.AddSpans(sctx, info.ID, refs)
	cancel()
	if err != nil && !p.shuttingDown(err) {
		p.c.errors[stageStore].Add(1)
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: recording spans of snapshot %s: %w", info.ID, err))
	}
	if err := p.exp.Attach(ctx, info, atts); err != nil && !p.shuttingDown(err) {
		p.c.errors[stageExport].Add(1)
		otel.Handle(fmt.Errorf("otelfr/spanprocessor: %w", err))
	}
}

// checksum returns info with its SHA-256, hashing the stored trace if it
// was committed without one ([exporter.Exporter.Checksum]), within the
// store timeout. On failure info is returned without it, and the
// attachments go without the checksum attribute.
func (p *Processor) checksum(ctx context.Context, info snapstore.Info) (snapstore.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.storeTimeout)
	defer cancel()
	return p.exp.Checksum(ctx, info)
}

// shuttingDown reports whether err comes from Shutdown: the exporter is
// shut down, or Shutdown cancelled the work in progress.
func (p *Processor) shuttingDown(err error) bool {
	return errors.Is(err, exporter.ErrShutdown) || p.ctx.Err() != nil
}
