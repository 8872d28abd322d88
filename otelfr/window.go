package otelfr

import (
	"errors"
	"fmt"
	"time"

	"github.com/otelfr/otel-flightrecorder/internal/tracefmt"
)

// errTraceFormat is wrapped by every error traceWindow returns: the input is
// not a complete Go 1.25/1.26 execution trace.
var errTraceFormat = errors.New("otelfr: malformed or unsupported Go execution trace")

// timedEventArgs is the number of uvarints (the timestamp delta included)
// that follow the type byte of each timed event: len(tracev2.Specs()[t].Args)
// for every t with IsTimedEvent set, in Go 1.25 and 1.26. Zero marks a type
// that cannot appear in an event batch.
//
// internal/tracefmt, whose package comment describes the format, reads the
// framing of the trace for traceWindow; the timed events inside event
// batches it decodes itself, with this table.
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

// windowScan follows the generations of a trace, batch by batch, for
// scanTraceWindow and windowWriter: everything but decoding the final
// generation's last events, which needs the batches themselves.
type windowScan struct {
	needEOG    bool    // Go 1.26: generations end with EvEndOfGeneration
	g          genScan // current generation or, once closed, the last one
	inGen      bool    // g is open
	nGens      int     // closed generations
	start, end time.Time
}

// header checks the trace header.
func (w *windowScan) header(h [tracefmt.HeaderLen]byte) error {
	switch h {
	case tracefmt.Header(26):
		w.needEOG = true
	case tracefmt.Header(25):
	default:
		return fmt.Errorf("%w: unsupported header %q, want go 1.25 or go 1.26", errTraceFormat, string(h[:]))
	}
	return nil
}

func (w *windowScan) closeGen() error {
	s, e, err := w.g.window()
	if err != nil {
		return err
	}
	if w.nGens == 0 || s.Before(w.start) {
		w.start = s
	}
	if w.nGens == 0 || e.After(w.end) {
		w.end = e
	}
	w.nGens++
	w.inGen = false
	return nil
}

// endOfGeneration handles an end-of-generation marker at offset p.
func (w *windowScan) endOfGeneration(p int) error {
	if !w.inGen {
		return fmt.Errorf("%w: offset %d: end of generation without batches", errTraceFormat, p)
	}
	w.g.endOff = p
	return w.closeGen()
}

// batch handles the batch h at offset p. It reports whether h begins a
// generation.
func (w *windowScan) batch(h tracefmt.Batch, p int) (bool, error) {
	if w.inGen && h.Gen != w.g.gen {
		if w.needEOG {
			return false, fmt.Errorf("%w: offset %d: batch of generation %d inside generation %d", errTraceFormat, p, h.Gen, w.g.gen)
		}
		w.g.endOff = p
		if err := w.closeGen(); err != nil {
			return false, err
		}
	}
	first := !w.inGen
	if first {
		w.g.reset(h.Gen, p)
		w.inGen = true
	}
	g := &w.g
	if g.batches == 0 || h.Ts < g.minTs {
		g.minTs = h.Ts
	}
	g.batches++
	switch h.Kind() {
	case tracefmt.KindEvents:
		g.seeMax(h.Ts)
		g.noteM(h.M, p)
	case tracefmt.KindSync:
		if err := g.readSync(h, p); err != nil {
			return first, err
		}
	case tracefmt.KindCPUSamples:
		if err := g.readCPUSamples(h, p); err != nil {
			return first, err
		}
	}
	return first, nil
}

// finish closes the trace, which ended at offset size.
func (w *windowScan) finish(size int) error {
	if w.inGen {
		if w.needEOG {
			return fmt.Errorf("%w: truncated: generation %d has no end-of-generation marker", errTraceFormat, w.g.gen)
		}
		w.g.endOff = size
		if err := w.closeGen(); err != nil {
			return err
		}
	}
	if w.nGens == 0 {
		return fmt.Errorf("%w: trace has no generations", errTraceFormat)
	}
	return nil
}

// result returns the window once the final generation's events are
// decoded into g.maxTs, which was maxTs before.
func (w *windowScan) result(maxTs uint64) (start, end time.Time, err error) {
	start, end = w.start, w.end
	if w.g.maxTs != maxTs {
		if e := w.g.wall(w.g.maxTs); e.After(end) {
			end = e
		}
	}
	if end.Before(start) {
		return start, end, fmt.Errorf("%w: inconsistent clocks: end %v before start %v", errTraceFormat, end, start)
	}
	return start, end, nil
}

func scanTraceWindow(data []byte, mode decodeMode) (start, end time.Time, err error) {
	if len(data) < tracefmt.HeaderLen {
		return start, end, fmt.Errorf("%w: %d bytes is too short for a trace header", errTraceFormat, len(data))
	}
	var w windowScan
	if err := w.header([tracefmt.HeaderLen]byte(data)); err != nil {
		return start, end, err
	}
	for p := tracefmt.HeaderLen; p < len(data); {
		if data[p] == tracefmt.EvEndOfGeneration {
			if err := w.endOfGeneration(p); err != nil {
				return start, end, err
			}
			p++
			continue
		}
		h, next, err := tracefmt.ReadBatch(data, p)
		if err != nil {
			return start, end, fmt.Errorf("%w: %w", errTraceFormat, err)
		}
		if _, err := w.batch(h, p); err != nil {
			return start, end, err
		}
		p = next
	}
	if err := w.finish(len(data)); err != nil {
		return start, end, err
	}

	// g is the final generation. Its last events lie somewhere inside the
	// batches rather than at their base timestamps: decode those batches.
	g := &w.g
	maxTs := g.maxTs
	switch {
	case mode == decodeNone:
	case mode == decodeAll || g.overflow:
		err = g.decodeAll(data)
	default:
		err = g.decodeLastPerM(data)
	}
	if err != nil {
		return start, end, err
	}
	return w.result(maxTs)
}

// decodeLastPerM decodes the last event batch of each M of the generation.
func (g *genScan) decodeLastPerM(data []byte) error {
	for i := range g.mtab {
		off := g.mtab[i].off
		if off == 0 {
			continue
		}
		h, _, err := tracefmt.ReadBatch(data, off)
		if err != nil {
			return fmt.Errorf("%w: %w", errTraceFormat, err) // unreachable: the header parsed before
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
		h, next, err := tracefmt.ReadBatch(data, p)
		if err != nil {
			return fmt.Errorf("%w: %w", errTraceFormat, err) // unreachable: the header parsed before
		}
		if h.Kind() == tracefmt.KindEvents {
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
func (g *genScan) decodeEvents(h tracefmt.Batch, off int) error {
	ts, err := lastEvent(h, off)
	if err != nil {
		return err
	}
	g.seeMax(ts)
	return nil
}

// lastEvent walks the timed events of an event batch and returns the
// timestamp of the last.
func lastEvent(h tracefmt.Batch, off int) (uint64, error) {
	b := h.Payload
	ts := h.Ts
	for p := 0; p < len(b); {
		typ := b[p]
		n := timedEventArgs[typ]
		if n == 0 {
			return 0, fmt.Errorf("%w: batch at offset %d: unexpected event type %d", errTraceFormat, off, typ)
		}
		var dt uint64
		if dt, p = tracefmt.Uvarint(b, p+1); p < 0 {
			return 0, fmt.Errorf("%w: batch at offset %d: bad event timestamp", errTraceFormat, off)
		}
		ts += dt
		for range n - 1 {
			if p = tracefmt.SkipUvarint(b, p); p < 0 {
				return 0, fmt.Errorf("%w: batch at offset %d: bad event argument", errTraceFormat, off)
			}
		}
	}
	return ts, nil
}

// readSync reads a sync batch: EvSync, then EvFrequency [freq] and
// EvClockSnapshot [dt, mono, sec, nsec], once each per generation.
func (g *genScan) readSync(h tracefmt.Batch, off int) error {
	b := h.Payload
	for p := 1; p < len(b); { // b[0] is EvSync
		ev, next, err := tracefmt.ReadSyncEvent(b, p)
		if err != nil {
			return fmt.Errorf("%w: sync batch at offset %d: %w", errTraceFormat, off, err)
		}
		p = next
		switch ev.Type {
		case tracefmt.EvFrequency:
			if g.freq != 0 {
				return fmt.Errorf("%w: sync batch at offset %d: second frequency event in generation %d", errTraceFormat, off, g.gen)
			}
			g.freq = ev.Freq
		case tracefmt.EvClockSnapshot:
			if g.hasSnap {
				return fmt.Errorf("%w: sync batch at offset %d: second clock snapshot in generation %d", errTraceFormat, off, g.gen)
			}
			g.snapTs, g.snapSec, g.snapNsec = h.Ts+ev.Dt, ev.Sec, ev.Nsec
			g.hasSnap = true
			g.seeMax(g.snapTs)
		}
	}
	return nil
}

// readCPUSamples reads a CPU samples batch: EvCPUSamples, then
// EvCPUSample [ts, m, p, g, stack] events with absolute timestamps.
func (g *genScan) readCPUSamples(h tracefmt.Batch, off int) error {
	b := h.Payload
	for p := 1; p < len(b); { // b[0] is EvCPUSamples
		if b[p] != tracefmt.EvCPUSample {
			return fmt.Errorf("%w: CPU samples batch at offset %d: unexpected event type %d", errTraceFormat, off, b[p])
		}
		var ts uint64
		ts, p = tracefmt.Uvarint(b, p+1)
		for range 4 {
			p = tracefmt.SkipUvarint(b, p)
		}
		if p < 0 {
			return fmt.Errorf("%w: CPU samples batch at offset %d: bad sample", errTraceFormat, off)
		}
		g.seeMax(ts)
	}
	return nil
}

// windowWriter finds the window of a trace written to it, as [traceWindow]
// does from the whole trace, without holding the trace: it keeps a copy of
// the last event batch of each M of the generation being written, to
// decode those of the final generation once the trace ends, and decodes
// every event batch as it passes in a generation of more than mTableMax Ms.
//
// Write never fails, so that a trace the scan cannot read is still written
// wherever it goes: the first error is kept for [windowWriter.window].
type windowWriter struct {
	split tracefmt.Splitter
	scan  windowScan
	err   error

	last  []lastBatch    // of the current generation, one per M
	index map[uint64]int // M to its place in last

	// lend, when set, is that the buffer written from stays as it is
	// until settle is called: a batch passed straight from it is kept
	// there instead of copied (the writer then calls settle before it
	// writes over the buffer).
	lend bool

	// The current generation has too many Ms for last: its event batches
	// are decoded as they pass, into eagerMax, or the first error. Both
	// count only if it is the final generation, as with traceWindow.
	eager    bool
	eagerMax uint64
	eagerErr error

	// isKnown: the window was given (known), and nothing written is read.
	isKnown              bool
	knownStart, knownEnd time.Time
}

// lastBatch is an M's latest event batch: a copy in own, or, when lent,
// the buffer written from.
type lastBatch struct {
	off     int
	ts      uint64
	payload []byte
	own     []byte
	lent    bool
}

// settle copies the batches kept in the buffer written from into their
// own, before the writer writes over it.
func (w *windowWriter) settle() {
	for i := range w.last {
		l := &w.last[i]
		if l.lent {
			l.own = append(l.own[:0], l.payload...)
			l.payload, l.lent = l.own, false
		}
	}
}

func (w *windowWriter) init() {
	w.index = make(map[uint64]int)
	w.split.Header = w.scan.header
	w.split.EndOfGeneration = func(off int64) error { return w.scan.endOfGeneration(int(off)) }
	w.split.Batch = w.batch
}

// reset readies w for another trace, written from a buffer it may keep
// batches in until settle (lend), keeping the buffers it copies batches
// into.
func (w *windowWriter) reset() {
	last := w.last[:0]
	*w = windowWriter{lend: true, last: last}
}

// known gives the window of the trace about to be written, read from its
// events before: window returns it, and Write reads nothing.
func (w *windowWriter) known(start, end time.Time) {
	w.isKnown, w.knownStart, w.knownEnd = true, start, end
}

func (w *windowWriter) Write(p []byte) (int, error) {
	if w.err == nil && !w.isKnown {
		if w.index == nil {
			w.init()
		}
		_, w.err = w.split.Write(p)
	}
	return len(p), nil
}

func (w *windowWriter) batch(h tracefmt.Batch, off int64) error {
	first, err := w.scan.batch(h, int(off))
	if err != nil {
		return err
	}
	if first {
		w.last = w.last[:0]
		clear(w.index)
		w.eager, w.eagerMax, w.eagerErr = false, 0, nil
	}
	if h.Kind() != tracefmt.KindEvents {
		return nil
	}
	g := &w.scan.g
	if g.overflow && !w.eager {
		// Decode what is held, and from now on every batch of the
		// generation as it passes (decodeAll, in one pass).
		w.eager = true
		for _, l := range w.last {
			w.decodeEager(tracefmt.Batch{Ts: l.ts, Payload: l.payload}, l.off)
		}
		w.last = w.last[:0]
		clear(w.index)
	}
	if w.eager {
		w.decodeEager(h, int(off))
		return nil
	}
	i, ok := w.index[h.M]
	if !ok {
		i = len(w.last)
		w.index[h.M] = i
		if i < cap(w.last) {
			w.last = w.last[:i+1]
		} else {
			w.last = append(w.last, lastBatch{})
		}
	}
	l := &w.last[i]
	l.off, l.ts = int(off), h.Ts
	if w.lend && !w.split.Assembled() {
		l.payload, l.lent = h.Payload, true
		return nil
	}
	l.own = append(l.own[:0], h.Payload...)
	l.payload, l.lent = l.own, false
	return nil
}

func (w *windowWriter) decodeEager(h tracefmt.Batch, off int) {
	if w.eagerErr != nil {
		return
	}
	ts, err := lastEvent(h, off)
	w.eagerErr = err
	w.eagerMax = max(w.eagerMax, ts)
}

// decodeLast decodes the batches held into the current generation.
func (w *windowWriter) decodeLast() error {
	for _, l := range w.last {
		if err := w.scan.g.decodeEvents(tracefmt.Batch{Ts: l.ts, Payload: l.payload}, l.off); err != nil {
			return err
		}
	}
	return nil
}

// window returns the window of the trace written, which has ended.
func (w *windowWriter) window() (start, end time.Time, err error) {
	if w.isKnown {
		return w.knownStart, w.knownEnd, nil
	}
	if w.err == nil {
		w.err = w.split.Close()
	}
	if w.err != nil && !errors.Is(w.err, errTraceFormat) {
		w.err = fmt.Errorf("%w: %w", errTraceFormat, w.err)
	}
	if w.err != nil {
		return start, end, w.err
	}
	if err := w.scan.finish(int(w.split.Offset())); err != nil {
		return start, end, err
	}
	maxTs := w.scan.g.maxTs
	if w.eagerErr != nil {
		return start, end, w.eagerErr
	}
	w.scan.g.seeMax(w.eagerMax)
	if err := w.decodeLast(); err != nil {
		return start, end, err
	}
	return w.scan.result(maxTs)
}
