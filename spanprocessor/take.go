package spanprocessor

import (
	"context"
	"fmt"

	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// taking is a snapshot being taken and stored, shared by the worker and the
// Snapshot calls that ask for one meanwhile.
type taking struct {
	done  chan struct{}
	info  snapstore.Info
	stage int // of err: stageSnapshot or stageStore
	err   error
}

// take takes a snapshot and stores it, streaming it from the flight
// recorder into the store ([exporter.Exporter.Create]). Takes are
// single-flight, as the recorder's snapshots are: a call made while
// another is in progress waits for it, for as long as ctx allows, and
// returns its result. The call that takes the snapshot counts it; errors,
// with the stage they come from, are for the callers to count.
func (p *Processor) take(ctx context.Context, reason string) (snapstore.Info, int, error) {
	p.takeMu.Lock()
	if t := p.taking; t != nil {
		p.takeMu.Unlock()
		select {
		case <-t.done:
			return t.info, t.stage, t.err
		case <-ctx.Done():
			return snapstore.Info{}, stageSnapshot, ctx.Err()
		}
	}
	t := &taking{done: make(chan struct{})}
	p.taking = t
	p.takeMu.Unlock()

	t.info, t.stage, t.err = p.store(ctx, reason)
	if t.err == nil {
		p.c.snapshots.Add(1)
		p.c.snapshotBytes.Add(t.info.Size)
	}

	p.takeMu.Lock()
	p.taking = nil
	p.takeMu.Unlock()
	close(t.done)
	return t.info, t.stage, t.err
}

// store writes a snapshot from the recorder into the store, in one pass.
func (p *Processor) store(ctx context.Context, reason string) (snapstore.Info, int, error) {
	w, err := p.exp.Create(ctx)
	if err != nil {
		return snapstore.Info{}, stageStore, fmt.Errorf("storing a snapshot: %w", err)
	}
	snap, err := p.rec.WriteSnapshot(ctx, w, reason)
	if err != nil {
		w.Abort()
		return snapstore.Info{}, stageSnapshot, err
	}
	info, err := w.Commit(ctx, snap)
	if err != nil {
		return snapstore.Info{}, stageStore, fmt.Errorf("storing snapshot %s: %w", snap.ID, err)
	}
	return info, 0, nil
}
