package analysis

import (
	"errors"
	"fmt"
	"io"

	"github.com/otelfr/otel-flightrecorder/internal/tracefmt"
)

// AnalyzeReader is [Analyze] for a trace read from r, such as a stored
// snapshot (snapstore.Store.Open), without holding all of it: it reads
// the trace's framing once, through a small buffer, to find its
// generations, then reads back only those Analyze may parse for span
// (the ones its times overlap, with one more on each side, and one more
// before for the wait it may look back on) and analyzes them as a trace of
// their own. A span without times needs the whole trace.
//
// It returns Analyze's errors, and r's wrapped.
func AnalyzeReader(r io.ReadSeeker, span Span, opts ...Option) (*Diagnosis, error) {
	gens, hdr, err := readGenerations(r)
	if err != nil {
		return nil, err
	}
	lo, hi := 0, len(gens)-1
	if !span.Start.IsZero() {
		lo = max(0, containing(gens, span.Start)-2)
	}
	if !span.End.IsZero() {
		hi = max(lo, min(hi, containing(gens, span.End)+1))
	}
	data := make([]byte, tracefmt.HeaderLen, tracefmt.HeaderLen+gens[hi].end-gens[lo].off)
	copy(data, hdr[:])
	if _, err := r.Seek(int64(gens[lo].off), io.SeekStart); err != nil {
		return nil, fmt.Errorf("analysis: reading the trace: %w", err)
	}
	data = data[:cap(data)]
	if _, err := io.ReadFull(r, data[tracefmt.HeaderLen:]); err != nil {
		return nil, fmt.Errorf("analysis: reading the trace: %w", err)
	}
	return Analyze(data, span, opts...)
}

// readGenerations reads the trace in r from its start and returns its
// header and generations, as splitGenerations does, with their offsets in
// r. Errors wrap ErrNotTrace, ErrMalformed or r's error.
func readGenerations(r io.ReadSeeker) ([]generation, [tracefmt.HeaderLen]byte, error) {
	var hdr [tracefmt.HeaderLen]byte
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, hdr, fmt.Errorf("analysis: reading the trace: %w", err)
	}
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			_, err = traceVersion(hdr[:0])
			return nil, hdr, err
		}
		return nil, hdr, fmt.Errorf("analysis: reading the trace: %w", err)
	}
	v, err := traceVersion(hdr[:])
	if err != nil {
		return nil, hdr, err
	}
	if v != 25 && v != 26 {
		return nil, hdr, unsupported(hdr[:], v)
	}
	eog := v >= 26
	var (
		gens []generation
		open bool
	)
	closeGen := func(end int) error {
		g := &gens[len(gens)-1]
		g.end = end
		open = false
		if g.freq == 0 || g.snapWall.IsZero() {
			return fmt.Errorf("%w: generation %d has no frequency or clock snapshot", ErrMalformed, g.num)
		}
		return nil
	}
	sp := tracefmt.Splitter{
		EndOfGeneration: func(off int64) error {
			if !eog {
				return fmt.Errorf("%w: offset %d: end of generation in a go 1.%d trace", ErrMalformed, off, v)
			}
			if !open {
				return fmt.Errorf("%w: offset %d: end of generation without batches", ErrMalformed, off)
			}
			return closeGen(int(off) + 1)
		},
		Batch: func(h tracefmt.Batch, off int64) error {
			p := int(off)
			if open && h.Gen != gens[len(gens)-1].num {
				if eog {
					return fmt.Errorf("%w: offset %d: batch of generation %d inside generation %d", ErrMalformed, p, h.Gen, gens[len(gens)-1].num)
				}
				if err := closeGen(p); err != nil {
					return err
				}
			}
			if !open {
				gens = append(gens, generation{num: h.Gen, off: p, minTs: h.Ts})
				open = true
			}
			g := &gens[len(gens)-1]
			g.minTs = min(g.minTs, h.Ts)
			if h.Kind() == tracefmt.KindSync {
				return g.readSync(h, p)
			}
			return nil
		},
	}
	// The Splitter counts offsets from the header, which it is given first.
	if _, err := sp.Write(hdr[:]); err != nil {
		return nil, hdr, err
	}
	buf := make([]byte, 64<<10)
	for {
		n, rerr := r.Read(buf)
		if _, err := sp.Write(buf[:n]); err != nil {
			return nil, hdr, wrapMalformed(err)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, hdr, fmt.Errorf("analysis: reading the trace: %w", rerr)
		}
	}
	if err := sp.Close(); err != nil {
		return nil, hdr, wrapMalformed(err)
	}
	if open {
		if eog {
			return nil, hdr, fmt.Errorf("%w: truncated: generation %d has no end marker", ErrMalformed, gens[len(gens)-1].num)
		}
		if err := closeGen(int(sp.Offset())); err != nil {
			return nil, hdr, err
		}
	}
	if len(gens) == 0 {
		return nil, hdr, fmt.Errorf("%w: no generations", ErrMalformed)
	}
	return gens, hdr, nil
}

// wrapMalformed wraps a framing error with ErrMalformed, unless it is one
// of ours already.
func wrapMalformed(err error) error {
	if errors.Is(err, ErrMalformed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}
