package otelfr

import (
	"errors"
	"fmt"
	"time"
)

// errTraceFormat is wrapped by every error traceWindow returns: the input is
// not a complete Go 1.25/1.26 execution trace.
var errTraceFormat = errors.New("otelfr: malformed or unsupported Go execution trace")

// Wire format of the Go 1.25 and 1.26 execution trace, from
// internal/trace/tracev2 (events.go, spec.go), runtime/tracebuf.go,
// runtime/tracetime.go and internal/trace/{batch,generation}.go.
//
// A trace is a 16-byte header followed by generations. A generation is a run
// of batches with the same generation number; from Go 1.26 on it ends with a
// lone evEndOfGeneration byte, which runtime/trace.FlightRecorder.WriteTo
// also emits. A batch is
//
//	evEventBatch        gen M ts size payload[size]
//	evExperimentalBatch exp(1 byte) gen M ts size payload[size]
//
// where gen, M, ts and size are uvarints (M is ^0, 10 bytes, for batches the
// runtime writes without an M; size is always padded to 10 bytes) and ts is
// the batch's base timestamp in trace clock units. The payload's first byte
// tells special batches apart: evSync (frequency and clock snapshot),
// evStrings, evStacks, evCPUSamples. Anything else is a batch of timed events,
// each one type byte, a uvarint timestamp delta from the previous event (the
// first from the batch base) and a fixed number of uvarint arguments.
const (
	evEventBatch        = 1
	evStacks            = 2
	evStrings           = 4
	evCPUSamples        = 6
	evCPUSample         = 7
	evFrequency         = 8
	evExperimentalBatch = 49
	evSync              = 50
	evClockSnapshot     = 51
	evEndOfGeneration   = 52

	traceHeaderLen = 16
	maxBatchSize   = 64 << 10 // tracev2.MaxBatchSize
	maxVarintLen   = 10
)

var (
	traceHeader125 = [traceHeaderLen]byte([]byte("go 1.25 trace\x00\x00\x00"))
	traceHeader126 = [traceHeaderLen]byte([]byte("go 1.26 trace\x00\x00\x00"))
)

// timedEventArgs is the number of uvarints (the timestamp delta included)
// that follow the type byte of each timed event: len(tracev2.Specs()[t].Args)
// for every t with IsTimedEvent set, in Go 1.25 and 1.26. Zero marks a type
// that cannot appear in an event batch.
var timedEventArgs = [256]uint8{
	9:  3, // ProcsChange [dt, procs, stack]
	10: 3, // ProcStart [dt, p, p_seq]
	11: 1, // ProcStop [dt]
	12: 4, // ProcSteal [dt, p, p_seq, m]
	13: 3, // ProcStatus [dt, p, pstatus]
	14: 4, // GoCreate [dt, new_g, new_stack, stack]
	15: 2, // GoCreateSyscall [dt, new_g]
	16: 3, // GoStart [dt, g, g_seq]
	17: 1, // GoDestroy [dt]
	18: 1, // GoDestroySyscall [dt]
	19: 3, // GoStop [dt, reason, stack]
	20: 3, // GoBlock [dt, reason, stack]
	21: 4, // GoUnblock [dt, g, g_seq, stack]
	22: 3, // GoSyscallBegin [dt, p_seq, stack]
	23: 1, // GoSyscallEnd [dt]
	24: 1, // GoSyscallEndBlocked [dt]
	25: 4, // GoStatus [dt, g, m, gstatus]
	26: 3, // STWBegin [dt, kind, stack]
	27: 1, // STWEnd [dt]
	28: 2, // GCActive [dt, gc_seq]
	29: 3, // GCBegin [dt, gc_seq, stack]
	30: 2, // GCEnd [dt, gc_seq]
	31: 2, // GCSweepActive [dt, p]
	32: 2, // GCSweepBegin [dt, stack]
	33: 3, // GCSweepEnd [dt, swept, reclaimed]
	34: 2, // GCMarkAssistActive [dt, g]
	35: 2, // GCMarkAssistBegin [dt, stack]
	36: 1, // GCMarkAssistEnd [dt]
	37: 2, // HeapAlloc [dt, heapalloc]
	38: 2, // HeapGoal [dt, heapgoal]
	39: 2, // GoLabel [dt, label]
	40: 5, // UserTaskBegin [dt, task, parent_task, name, stack]
	41: 3, // UserTaskEnd [dt, task, stack]
	42: 4, // UserRegionBegin [dt, task, name, stack]
	43: 4, // UserRegionEnd [dt, task, name, stack]
	44: 5, // UserLog [dt, task, key, value, stack]
	45: 3, // GoSwitch [dt, g, g_seq]
	46: 3, // GoSwitchDestroy [dt, g, g_seq]
	47: 4, // GoCreateBlocked [dt, new_g, new_stack, stack]
	48: 5, // GoStatusStack [dt, g, m, gstatus, stack]
	51: 4, // ClockSnapshot [dt, mono, sec, nsec]
	// AllocFree experiment; the runtime writes these into experimental
	// batches, but the reference parser also accepts them in event batches.
	128: 4, // Span [dt, id, npages, kindclass]
	129: 4, // SpanAlloc [dt, id, npages, kindclass]
	130: 2, // SpanFree [dt, id]
	131: 3, // HeapObject [dt, id, type]
	132: 3, // HeapObjectAlloc [dt, id, type]
	133: 2, // HeapObjectFree [dt, id]
	134: 3, // GoroutineStack [dt, id, order]
	135: 3, // GoroutineStackAlloc [dt, id, order]
	136: 2, // GoroutineStackFree [dt, id]
}

// traceWindow reports the wall-clock interval covered by a Go execution trace
// produced by runtime/trace.FlightRecorder.WriteTo (Go 1.25+ format).
//
// It maps trace clock timestamps to wall-clock time with the EvFrequency and
// EvClockSnapshot of each generation's sync batch:
// wall = snapshot wall + (ts - snapshot ts) * 1e9/frequency ns, as
// golang.org/x/exp/trace relates Event.Time to Sync.ClockSnapshot. Each
// timestamp is converted with the snapshot of its own generation.
//
//   - start is the earliest batch base timestamp in the trace. The reference
//     parser (golang.org/x/exp/trace) dates a generation's leading Sync
//     event, and so the trace's first event, at exactly this timestamp, so
//     start matches it to the nanosecond.
//   - end is the latest event timestamp: the largest of the base timestamps
//     of all event batches, every clock snapshot, every CPU sample and, in the
//     final generation, the last event of each M's last batch (an M's batches
//     are in time order, so the trace's last event is among these). It
//     matches the reference parser's last event to a nanosecond or two. If
//     the final generation holds batches of more than 192 distinct Ms, every
//     event batch of that generation is decoded instead: slower, same result.
//     Stack, string and experimental batches do not count: the runtime writes
//     them after their generation ended, tens of microseconds after its last
//     event.
//
// The conversion is as exact as the runtime's clock snapshot, which reads the
// wall and trace clocks back to back, well under a microsecond apart. Where
// the trace clock is the monotonic clock (Linux, macOS), it and the wall
// clock are slewed together, so they only drift apart when the wall clock is
// stepped between a generation's snapshot and its events (at most about a
// second). Where the trace clock counts CPU ticks (Windows), the runtime's
// estimate of their frequency adds its error times that second. The returned
// times carry no monotonic clock reading.
//
// The trace must be complete: a "go 1.25 trace" or "go 1.26 trace" header,
// whole batches, a sync batch with one frequency and one clock snapshot in
// every generation and, for Go 1.26, every generation closed by an
// end-of-generation marker (so a prefix made of whole generations is itself
// valid). Otherwise, and for a trace without generations, the error wraps
// errTraceFormat. traceWindow validates the framing of every batch, but the
// contents only of the batches it decodes: sync and CPU sample batches and
// the event batches named above.
//
// traceWindow does not allocate unless it fails. It reads each batch header
// and skips the payload by its size, so its cost grows with the number of
// batches plus at most one 64 KiB batch per M, not with the size of the
// trace: about 0.1 ms for a 64 MiB snapshot.
func traceWindow(data []byte) (start, end time.Time, err error) {
	return scanTraceWindow(data, decodeLastPerM)
}

// decodeMode selects which event batches scanTraceWindow decodes to find the
// latest event. Modes other than decodeLastPerM exist for tests.
type decodeMode uint8

const (
	// decodeLastPerM decodes the last event batch of each M in the final
	// generation.
	decodeLastPerM decodeMode = iota
	// decodeNone decodes no event batch: end is the latest event batch base
	// timestamp, clock snapshot or CPU sample.
	decodeNone
	// decodeAll decodes every event batch of the final generation.
	decodeAll
)

// Per-generation table of the last event batch seen for each M: an open
// addressing hash table that lives on the stack.
const (
	mTableSize = 256 // power of two
	mTableMax  = 192 // load limit; beyond it, fall back to decodeAll
)

type mSlot struct {
	m   uint64
	off int // offset of the M's last event batch; 0 marks an empty slot
}

// genScan accumulates one generation.
type genScan struct {
	gen      uint64
	startOff int // offset of the generation's first batch
	endOff   int // offset just past its last batch
	batches  int
	minTs    uint64 // earliest batch base timestamp
	maxTs    uint64 // latest event timestamp seen so far

	freq                      uint64 // trace clock units per second
	hasSnap                   bool
	snapTs, snapSec, snapNsec uint64

	ms       int
	overflow bool
	mtab     [mTableSize]mSlot
}

func (g *genScan) reset(gen uint64, off int) {
	*g = genScan{gen: gen, startOff: off}
}

func (g *genScan) seeMax(ts uint64) {
	if ts > g.maxTs {
		g.maxTs = ts
	}
}

// noteM records off as the latest event batch of M m.
func (g *genScan) noteM(m uint64, off int) {
	if g.overflow {
		return
	}
	i := (m * 0x9e3779b97f4a7c15) >> (64 - 8)
	for {
		s := &g.mtab[i%mTableSize]
		if s.off == 0 {
			if g.ms >= mTableMax {
				g.overflow = true
				return
			}
			g.ms++
			s.m, s.off = m, off
			return
		}
		if s.m == m {
			s.off = off
			return
		}
		i++
	}
}

// wall converts a timestamp of this generation to wall-clock time.
func (g *genScan) wall(ts uint64) time.Time {
	ns := (float64(ts) - float64(g.snapTs)) * (1e9 / float64(g.freq))
	const limit = 1 << 62 // keep garbage in range of time.Duration
	ns = min(max(ns, -limit), limit)
	return time.Unix(int64(g.snapSec), int64(g.snapNsec)).Add(time.Duration(ns))
}

// window returns the generation's interval in wall-clock time.
func (g *genScan) window() (start, end time.Time, err error) {
	if g.freq == 0 {
		return start, end, fmt.Errorf("%w: generation %d has no frequency event", errTraceFormat, g.gen)
	}
	if !g.hasSnap {
		return start, end, fmt.Errorf("%w: generation %d has no clock snapshot", errTraceFormat, g.gen)
	}
	return g.wall(g.minTs), g.wall(g.maxTs), nil
}

func scanTraceWindow(data []byte, mode decodeMode) (start, end time.Time, err error) {
	if len(data) < traceHeaderLen {
		return start, end, fmt.Errorf("%w: %d bytes is too short for a trace header", errTraceFormat, len(data))
	}
	var needEOG bool // Go 1.26: generations end with evEndOfGeneration
	switch [traceHeaderLen]byte(data) {
	case traceHeader126:
		needEOG = true
	case traceHeader125:
	default:
		return start, end, fmt.Errorf("%w: unsupported header %q, want go 1.25 or go 1.26", errTraceFormat, data[:traceHeaderLen])
	}

	var (
		g      genScan // current generation or, once closed, the last one
		inGen  bool    // g is open
		nGens  int     // closed generations
		closeG = func() error {
			s, e, err := g.window()
			if err != nil {
				return err
			}
			if nGens == 0 || s.Before(start) {
				start = s
			}
			if nGens == 0 || e.After(end) {
				end = e
			}
			nGens++
			inGen = false
			return nil
		}
	)
	for p := traceHeaderLen; p < len(data); {
		if data[p] == evEndOfGeneration {
			if !inGen {
				return start, end, fmt.Errorf("%w: offset %d: end of generation without batches", errTraceFormat, p)
			}
			g.endOff = p
			if err := closeG(); err != nil {
				return start, end, err
			}
			p++
			continue
		}
		h, next, err := readBatchHeader(data, p)
		if err != nil {
			return start, end, err
		}
		if inGen && h.gen != g.gen {
			if needEOG {
				return start, end, fmt.Errorf("%w: offset %d: batch of generation %d inside generation %d", errTraceFormat, p, h.gen, g.gen)
			}
			g.endOff = p
			if err := closeG(); err != nil {
				return start, end, err
			}
		}
		if !inGen {
			g.reset(h.gen, p)
			inGen = true
		}
		if g.batches == 0 || h.ts < g.minTs {
			g.minTs = h.ts
		}
		g.batches++
		switch h.kind() {
		case batchEvents:
			g.seeMax(h.ts)
			g.noteM(h.m, p)
		case batchSync:
			if err := g.readSync(h, p); err != nil {
				return start, end, err
			}
		case batchCPUSamples:
			if err := g.readCPUSamples(h, p); err != nil {
				return start, end, err
			}
		}
		p = next
	}
	if inGen {
		if needEOG {
			return start, end, fmt.Errorf("%w: truncated: generation %d has no end-of-generation marker", errTraceFormat, g.gen)
		}
		g.endOff = len(data)
		if err := closeG(); err != nil {
			return start, end, err
		}
	}
	if nGens == 0 {
		return start, end, fmt.Errorf("%w: trace has no generations", errTraceFormat)
	}

	// g is the final generation. Its last events lie somewhere inside the
	// batches rather than at their base timestamps: decode those batches.
	if mode != decodeNone {
		maxTs := g.maxTs
		if mode == decodeAll || g.overflow {
			err = g.decodeAll(data)
		} else {
			err = g.decodeLastPerM(data)
		}
		if err != nil {
			return start, end, err
		}
		if g.maxTs != maxTs {
			if e := g.wall(g.maxTs); e.After(end) {
				end = e
			}
		}
	}
	if end.Before(start) {
		return start, end, fmt.Errorf("%w: inconsistent clocks: end %v before start %v", errTraceFormat, end, start)
	}
	return start, end, nil
}

// decodeLastPerM decodes the last event batch of each M of the generation.
func (g *genScan) decodeLastPerM(data []byte) error {
	for i := range g.mtab {
		off := g.mtab[i].off
		if off == 0 {
			continue
		}
		h, _, err := readBatchHeader(data, off)
		if err != nil {
			return err // unreachable: the header parsed before
		}
		if err := g.decodeEvents(h, off); err != nil {
			return err
		}
	}
	return nil
}

// decodeAll decodes every event batch of the generation.
func (g *genScan) decodeAll(data []byte) error {
	for p := g.startOff; p < g.endOff; {
		h, next, err := readBatchHeader(data, p)
		if err != nil {
			return err // unreachable: the header parsed before
		}
		if h.kind() == batchEvents {
			if err := g.decodeEvents(h, p); err != nil {
				return err
			}
		}
		p = next
	}
	return nil
}

// decodeEvents walks the timed events of an event batch and records the
// timestamp of the last.
func (g *genScan) decodeEvents(h batchHeader, off int) error {
	b := h.payload
	ts := h.ts
	for p := 0; p < len(b); {
		typ := b[p]
		n := timedEventArgs[typ]
		if n == 0 {
			return fmt.Errorf("%w: batch at offset %d: unexpected event type %d", errTraceFormat, off, typ)
		}
		var dt uint64
		if dt, p = uvarint(b, p+1); p < 0 {
			return fmt.Errorf("%w: batch at offset %d: bad event timestamp", errTraceFormat, off)
		}
		ts += dt
		for range n - 1 {
			if p = skipUvarint(b, p); p < 0 {
				return fmt.Errorf("%w: batch at offset %d: bad event argument", errTraceFormat, off)
			}
		}
	}
	g.seeMax(ts)
	return nil
}

// readSync reads a sync batch: EvSync, then EvFrequency [freq] and
// EvClockSnapshot [dt, mono, sec, nsec], once each per generation.
func (g *genScan) readSync(h batchHeader, off int) error {
	b := h.payload
	for p := 1; p < len(b); { // b[0] is evSync
		typ := b[p]
		p++
		switch typ {
		case evFrequency:
			if g.freq != 0 {
				return fmt.Errorf("%w: sync batch at offset %d: second frequency event in generation %d", errTraceFormat, off, g.gen)
			}
			if g.freq, p = uvarint(b, p); p < 0 || g.freq == 0 {
				return fmt.Errorf("%w: sync batch at offset %d: bad frequency", errTraceFormat, off)
			}
		case evClockSnapshot:
			if g.hasSnap {
				return fmt.Errorf("%w: sync batch at offset %d: second clock snapshot in generation %d", errTraceFormat, off, g.gen)
			}
			var dt uint64
			dt, p = uvarint(b, p)
			p = skipUvarint(b, p) // monotonic clock
			g.snapSec, p = uvarint(b, p)
			g.snapNsec, p = uvarint(b, p)
			if p < 0 {
				return fmt.Errorf("%w: sync batch at offset %d: bad clock snapshot", errTraceFormat, off)
			}
			g.snapTs = h.ts + dt
			g.hasSnap = true
			g.seeMax(g.snapTs)
		default:
			return fmt.Errorf("%w: sync batch at offset %d: unexpected event type %d", errTraceFormat, off, typ)
		}
	}
	return nil
}

// readCPUSamples reads a CPU samples batch: EvCPUSamples, then
// EvCPUSample [ts, m, p, g, stack] events with absolute timestamps.
func (g *genScan) readCPUSamples(h batchHeader, off int) error {
	b := h.payload
	for p := 1; p < len(b); { // b[0] is evCPUSamples
		if b[p] != evCPUSample {
			return fmt.Errorf("%w: CPU samples batch at offset %d: unexpected event type %d", errTraceFormat, off, b[p])
		}
		var ts uint64
		ts, p = uvarint(b, p+1)
		for range 4 {
			p = skipUvarint(b, p)
		}
		if p < 0 {
			return fmt.Errorf("%w: CPU samples batch at offset %d: bad sample", errTraceFormat, off)
		}
		g.seeMax(ts)
	}
	return nil
}

type batchKind uint8

const (
	batchEvents batchKind = iota
	batchSync
	batchCPUSamples
	batchOther // strings, stacks, experimental
)

type batchHeader struct {
	exp     bool
	gen, m  uint64
	ts      uint64 // base timestamp
	payload []byte
}

func (h *batchHeader) kind() batchKind {
	if h.exp {
		return batchOther
	}
	if len(h.payload) == 0 {
		return batchEvents
	}
	switch h.payload[0] {
	case evSync:
		return batchSync
	case evCPUSamples:
		return batchCPUSamples
	case evStrings, evStacks:
		return batchOther
	}
	return batchEvents
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
		p += 2 // the experiment ID byte
	default:
		return h, 0, fmt.Errorf("%w: offset %d: want a batch, found event type %d", errTraceFormat, off, data[p])
	}
	var size uint64
	h.gen, p = uvarint(data, p)
	h.m, p = uvarint(data, p)
	h.ts, p = uvarint(data, p)
	size, p = uvarint(data, p)
	if p < 0 {
		return h, 0, fmt.Errorf("%w: batch at offset %d: truncated or bad header", errTraceFormat, off)
	}
	if h.gen == 0 {
		return h, 0, fmt.Errorf("%w: batch at offset %d: generation 0", errTraceFormat, off)
	}
	if size > maxBatchSize {
		return h, 0, fmt.Errorf("%w: batch at offset %d: size %d exceeds %d", errTraceFormat, off, size, maxBatchSize)
	}
	if size > uint64(len(data)-p) {
		return h, 0, fmt.Errorf("%w: batch at offset %d: truncated: %d of %d bytes", errTraceFormat, off, len(data)-p, size)
	}
	next = p + int(size)
	h.payload = data[p:next:next]
	return h, next, nil
}

// uvarint decodes the uvarint at b[p:] and returns it and the offset after
// it, or -1 if p is negative (a previous error) or the uvarint is truncated
// or overflows.
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

// skipUvarint is uvarint without the value.
func skipUvarint(b []byte, p int) int {
	if p < 0 {
		return -1
	}
	for i := 0; i < maxVarintLen; i++ {
		if p >= len(b) {
			return -1
		}
		c := b[p]
		p++
		if c < 0x80 {
			if i == maxVarintLen-1 && c > 1 {
				return -1
			}
			return p
		}
	}
	return -1
}
