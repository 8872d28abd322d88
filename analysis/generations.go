package analysis

import (
	"fmt"
	"time"

	"github.com/otelfr/otel-flightrecorder/internal/tracefmt"
)

// generation is one generation's place in a trace and its clock.
type generation struct {
	num      uint64
	off, end int    // data[off:end] holds its batches (and end marker)
	minTs    uint64 // earliest batch timestamp, in trace clock ticks
	freq     uint64 // ticks per second
	// The clock snapshot: the trace clock, in ticks, and the wall clock
	// read together.
	snapTs   uint64
	snapWall time.Time
	// strings holds the payload ranges [start, end) of the generation's
	// string batches, where runtime/trace.Log messages are stored.
	strings [][2]int
}

// wall converts a timestamp of this generation to wall-clock time.
func (g *generation) wall(ts uint64) time.Time {
	ns := (float64(ts) - float64(g.snapTs)) * (1e9 / float64(g.freq))
	const limit = 1 << 62 // keep garbage within time.Duration
	ns = min(max(ns, -limit), limit)
	return g.snapWall.Add(time.Duration(ns))
}

// start returns the wall-clock time of the generation's first event.
func (g *generation) start() time.Time { return g.wall(g.minTs) }

// traceVersion reads the header: the N of "go 1.N trace". Its errors wrap
// ErrNotTrace.
func traceVersion(data []byte) (int, error) {
	v, err := tracefmt.Version(data)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNotTrace, err)
	}
	return v, nil
}

// splitGenerations finds the generations of a Go 1.25 or 1.26 trace from
// its framing alone. Errors wrap ErrMalformed.
//
// Every generation carries its own string and stack tables and a sync batch
// with the trace clock's frequency and a clock snapshot, so the header
// followed by any run of consecutive whole generations is itself a valid
// trace. That is what lets Analyze parse only the generations that overlap
// a span.
func splitGenerations(data []byte, version int) ([]generation, error) {
	eog := version >= 26
	var (
		gens []generation
		g    *generation // open generation
	)
	closeGen := func(end int) error {
		g.end = end
		if g.freq == 0 || g.snapWall.IsZero() {
			return fmt.Errorf("%w: generation %d has no frequency or clock snapshot", ErrMalformed, g.num)
		}
		g = nil
		return nil
	}
	for p := tracefmt.HeaderLen; p < len(data); {
		if data[p] == tracefmt.EvEndOfGeneration && eog {
			if g == nil {
				return nil, fmt.Errorf("%w: offset %d: end of generation without batches", ErrMalformed, p)
			}
			if err := closeGen(p + 1); err != nil {
				return nil, err
			}
			p++
			continue
		}
		h, next, err := tracefmt.ReadBatch(data, p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if g != nil && h.Gen != g.num {
			if eog {
				return nil, fmt.Errorf("%w: offset %d: batch of generation %d inside generation %d", ErrMalformed, p, h.Gen, g.num)
			}
			if err := closeGen(p); err != nil {
				return nil, err
			}
		}
		if g == nil {
			gens = append(gens, generation{num: h.Gen, off: p, minTs: h.Ts})
			g = &gens[len(gens)-1]
		}
		g.minTs = min(g.minTs, h.Ts)
		switch h.Kind() {
		case tracefmt.KindSync:
			if err := g.readSync(h, p); err != nil {
				return nil, err
			}
		case tracefmt.KindStrings:
			g.strings = append(g.strings, [2]int{next - len(h.Payload), next})
		}
		p = next
	}
	if g != nil {
		if eog {
			return nil, fmt.Errorf("%w: truncated: generation %d has no end marker", ErrMalformed, g.num)
		}
		if err := closeGen(len(data)); err != nil {
			return nil, err
		}
	}
	if len(gens) == 0 {
		return nil, fmt.Errorf("%w: no generations", ErrMalformed)
	}
	return gens, nil
}

// readSync reads a sync batch: EvSync, then EvFrequency [freq] and
// EvClockSnapshot [dt, mono, sec, nsec]. The last of each wins.
func (g *generation) readSync(h tracefmt.Batch, off int) error {
	b := h.Payload
	for p := 1; p < len(b); { // b[0] is EvSync
		ev, next, err := tracefmt.ReadSyncEvent(b, p)
		if err != nil {
			return fmt.Errorf("%w: sync batch at offset %d: %w", ErrMalformed, off, err)
		}
		p = next
		switch ev.Type {
		case tracefmt.EvFrequency:
			g.freq = ev.Freq
		case tracefmt.EvClockSnapshot:
			if ev.Sec > 1<<40 || ev.Nsec >= 1e9 {
				return fmt.Errorf("%w: sync batch at offset %d: bad clock snapshot", ErrMalformed, off)
			}
			g.snapTs = h.Ts + ev.Dt
			g.snapWall = time.Unix(int64(ev.Sec), int64(ev.Nsec)).UTC()
		}
	}
	return nil
}
