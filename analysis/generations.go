package analysis

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// Framing of the Go 1.25 and 1.26 execution trace, as far as finding
// generations needs it. otelfr/window.go documents the format in full
// (from internal/trace/tracev2 and runtime/tracebuf.go): a 16-byte header,
// then batches
//
//	evEventBatch        gen M ts size payload[size]
//	evExperimentalBatch exp gen M ts size payload[size]
//
// grouped by generation; Go 1.26 closes each generation with a lone
// evEndOfGeneration byte. Every generation carries its own string and stack
// tables and a sync batch with the trace clock's frequency and a clock
// snapshot, so the header followed by any run of consecutive whole
// generations is itself a valid trace. That is what lets Analyze parse only
// the generations that overlap a span.
const (
	evEventBatch        = 1
	evStrings           = 4
	evFrequency         = 8
	evExperimentalBatch = 49
	evSync              = 50
	evClockSnapshot     = 51
	evEndOfGeneration   = 52

	headerLen    = 16
	maxBatchSize = 64 << 10 // tracev2.MaxBatchSize
	maxVarintLen = 10
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

// traceVersion reads the header: the N of "go 1.N trace". It returns
// ErrNotTrace if data does not start with such a header.
func traceVersion(data []byte) (int, error) {
	const prefix, suffix = "go 1.", " trace"
	if len(data) < headerLen || !bytes.HasPrefix(data, []byte(prefix)) {
		return 0, ErrNotTrace
	}
	h := data[len(prefix):headerLen]
	i := bytes.Index(h, []byte(suffix))
	if i <= 0 {
		return 0, ErrNotTrace
	}
	for _, c := range h[i+len(suffix):] {
		if c != 0 {
			return 0, ErrNotTrace
		}
	}
	v, err := strconv.Atoi(string(h[:i]))
	if err != nil || v < 0 {
		return 0, ErrNotTrace
	}
	return v, nil
}

// splitGenerations finds the generations of a Go 1.25 or 1.26 trace.
// Errors wrap ErrMalformed.
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
	for p := headerLen; p < len(data); {
		if data[p] == evEndOfGeneration && eog {
			if g == nil {
				return nil, fmt.Errorf("%w: offset %d: end of generation without batches", ErrMalformed, p)
			}
			if err := closeGen(p + 1); err != nil {
				return nil, err
			}
			p++
			continue
		}
		h, next, err := readBatchHeader(data, p)
		if err != nil {
			return nil, err
		}
		if g != nil && h.gen != g.num {
			if eog {
				return nil, fmt.Errorf("%w: offset %d: batch of generation %d inside generation %d", ErrMalformed, p, h.gen, g.num)
			}
			if err := closeGen(p); err != nil {
				return nil, err
			}
		}
		if g == nil {
			gens = append(gens, generation{num: h.gen, off: p, minTs: h.ts})
			g = &gens[len(gens)-1]
		}
		g.minTs = min(g.minTs, h.ts)
		if !h.exp && len(h.payload) > 0 {
			switch h.payload[0] {
			case evSync:
				if err := g.readSync(h, p); err != nil {
					return nil, err
				}
			case evStrings:
				g.strings = append(g.strings, [2]int{next - len(h.payload), next})
			}
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

// readSync reads a sync batch: evSync, then evFrequency [freq] and
// evClockSnapshot [dt, mono, sec, nsec].
func (g *generation) readSync(h batchHeader, off int) error {
	b := h.payload
	for p := 1; p < len(b); {
		typ := b[p]
		p++
		switch typ {
		case evFrequency:
			if g.freq, p = uvarint(b, p); p < 0 || g.freq == 0 {
				return fmt.Errorf("%w: sync batch at offset %d: bad frequency", ErrMalformed, off)
			}
		case evClockSnapshot:
			var dt, sec, nsec uint64
			dt, p = uvarint(b, p)
			p = skipUvarint(b, p) // monotonic clock
			sec, p = uvarint(b, p)
			nsec, p = uvarint(b, p)
			if p < 0 || sec > 1<<40 || nsec >= 1e9 {
				return fmt.Errorf("%w: sync batch at offset %d: bad clock snapshot", ErrMalformed, off)
			}
			g.snapTs = h.ts + dt
			g.snapWall = time.Unix(int64(sec), int64(nsec)).UTC()
		default:
			return fmt.Errorf("%w: sync batch at offset %d: unexpected event type %d", ErrMalformed, off, typ)
		}
	}
	return nil
}

type batchHeader struct {
	exp     bool
	gen, m  uint64
	ts      uint64
	payload []byte
}

// readBatchHeader parses the batch at data[p] and returns the offset of what
// follows it.
func readBatchHeader(data []byte, p int) (h batchHeader, next int, err error) {
	off := p
	switch data[p] {
	case evEventBatch:
		p++
	case evExperimentalBatch:
		h.exp = true
		p += 2
	default:
		return h, 0, fmt.Errorf("%w: offset %d: want a batch, found byte %d", ErrMalformed, off, data[p])
	}
	var size uint64
	h.gen, p = uvarint(data, p)
	h.m, p = uvarint(data, p)
	h.ts, p = uvarint(data, p)
	size, p = uvarint(data, p)
	switch {
	case p < 0:
		return h, 0, fmt.Errorf("%w: batch at offset %d: truncated header", ErrMalformed, off)
	case h.gen == 0:
		return h, 0, fmt.Errorf("%w: batch at offset %d: generation 0", ErrMalformed, off)
	case size > maxBatchSize:
		return h, 0, fmt.Errorf("%w: batch at offset %d: size %d exceeds %d", ErrMalformed, off, size, maxBatchSize)
	case size > uint64(len(data)-p):
		return h, 0, fmt.Errorf("%w: batch at offset %d: truncated", ErrMalformed, off)
	}
	next = p + int(size)
	h.payload = data[p:next:next]
	return h, next, nil
}

// uvarint decodes the uvarint at b[p:] and returns it and the offset after
// it, or -1 if p is negative (an earlier error) or the uvarint is bad.
func uvarint(b []byte, p int) (uint64, int) {
	if p < 0 {
		return 0, -1
	}
	var v uint64
	for i := 0; i < maxVarintLen; i++ {
		if p >= len(b) {
			return 0, -1
		}
		c := b[p]
		p++
		if c < 0x80 {
			if i == maxVarintLen-1 && c > 1 {
				return 0, -1
			}
			return v | uint64(c)<<(7*i), p
		}
		v |= uint64(c&0x7f) << (7 * i)
	}
	return 0, -1
}

func skipUvarint(b []byte, p int) int {
	_, p = uvarint(b, p)
	return p
}
