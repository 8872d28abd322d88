package analysis

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	xtrace "golang.org/x/exp/trace"
)

// Every stop-the-world is a range "stop-the-world (REASON)" in the trace,
// on the goroutine that stopped the world, with its stack. The reasons are
// the runtime's stwReasonStrings (runtime/proc.go): "GC mark termination"
// and "GC sweep termination" for the collector, and among the others
// "goroutine profile", "all goroutines stack trace" (runtime.Stack with
// all set), "read mem stats", "GOMAXPROCS", "write heap dump", "start
// trace" and "stop trace".

// stwReason returns the reason of a stop-the-world range's name: "GC mark
// termination" for "stop-the-world (GC mark termination)".
func stwReason(name string) string {
	if r, ok := strings.CutPrefix(name, "stop-the-world ("); ok {
		if r, ok := strings.CutSuffix(r, ")"); ok {
			return r
		}
	}
	return "unknown"
}

// isGCReason reports whether the collector stopped the world for reason.
func isGCReason(reason string) bool { return strings.HasPrefix(reason, "GC ") }

// STWCause is the stop-the-world time of one reason during an interval.
type STWCause struct {
	// Reason is the runtime's: "GC mark termination", "GC sweep
	// termination", "goroutine profile", "read mem stats", "GOMAXPROCS",
	// "all goroutines stack trace", "write heap dump", and so on.
	Reason string `json:"reason"`
	// Overlap is how long the world was stopped for it during the
	// interval, in Count stops.
	Overlap time.Duration `json:"overlap"`
	Count   int           `json:"count"`
	// Goroutine stopped the world for the longest of that time (0 if
	// unknown), in Func: the first frame of its stack in the program's own
	// code, or else where it was (runtime.GC, say). Stack is its stack.
	Goroutine int64   `json:"goroutine,omitempty"`
	Func      string  `json:"func,omitempty"`
	Stack     []Frame `json:"stack,omitempty"`
}

// stwCauses groups the stop-the-world phases that overlap the interval by
// reason, the longest first.
func (b *builder) stwCauses() []STWCause {
	type acc struct {
		STWCause
		byG     map[xtrace.GoID]time.Duration
		stackOf map[xtrace.GoID]xtrace.Stack
	}
	byReason := map[string]*acc{}
	for i := range b.tl.stws {
		s := b.tl.stws[i]
		o := b.overlap(s.start, s.end)
		if o == 0 {
			continue
		}
		r := stwReason(s.name)
		if st := b.cycleStart(s.start); isGCReason(r) && st != nil {
			// A collector's stop is the doing of whoever started the
			// cycle, not of the mark worker that ends it.
			s.g, s.stack = st.g, st.stack
		}
		a := byReason[r]
		if a == nil {
			a = &acc{STWCause: STWCause{Reason: r}, byG: map[xtrace.GoID]time.Duration{}, stackOf: map[xtrace.GoID]xtrace.Stack{}}
			byReason[r] = a
		}
		a.Overlap += o
		a.Count++
		a.byG[s.g] += o
		if s.stack != xtrace.NoStack {
			a.stackOf[s.g] = s.stack
		}
	}
	causes := make([]STWCause, 0, len(byReason))
	for _, a := range byReason {
		g, _ := maxKey(a.byG)
		if g != xtrace.NoGoroutine {
			a.Goroutine = int64(g)
			fs := b.stackFrames(a.stackOf[g])
			a.Stack = fs
			if f, _ := b.cfg.program.placeFrame(fs); f.Func != "" {
				a.Func = shortFunc(f.Func)
			}
		}
		causes = append(causes, a.STWCause)
	}
	slices.SortFunc(causes, func(x, y STWCause) int {
		if c := cmp.Compare(y.Overlap, x.Overlap); c != 0 {
			return c
		}
		return cmp.Compare(x.Reason, y.Reason)
	})
	return causes
}

// stwOverlapIn returns how long the world was stopped within ws.
func (b *builder) stwOverlapIn(ws []window) time.Duration {
	var d time.Duration
	for _, s := range b.tl.stws {
		d += overlapIn(s.start, s.end, ws)
	}
	return d
}

// cycleStart returns the stop-the-world that started the GC cycle running
// at t: the last "GC sweep termination" at or before it, on the goroutine
// that started the cycle (runtime.GC's caller, or an allocation that
// crossed the heap goal). nil when the trace does not hold it.
func (b *builder) cycleStart(t xtrace.Time) *interval {
	var last *interval
	for i := range b.tl.stws {
		s := &b.tl.stws[i]
		if s.start > t {
			break
		}
		if stwReason(s.name) == "GC sweep termination" {
			last = s
		}
	}
	return last
}

// markStart returns the stop-the-world that started the GC cycle whose
// mark phase is m. The runtime begins the mark phase's range before it
// stops the world for the sweep termination (gcStart emits GCStart first),
// so that stop lies within m, and the last one before m is the previous
// cycle's, often someone else's. For a mark phase that began before the
// parsed generations, cycleStart.
func (b *builder) markStart(m interval) *interval {
	for i := range b.tl.stws {
		s := &b.tl.stws[i]
		if s.start > m.end {
			break
		}
		if s.start >= m.start && stwReason(s.name) == "GC sweep termination" {
			return s
		}
	}
	return b.cycleStart(m.start)
}

// gcStarter names who started the GC cycles that marked during the
// interval, the most marking first: "goroutine 12 in main.flush". forced
// is set when that goroutine asked for the collection (runtime.GC,
// debug.FreeOSMemory) rather than crossed the heap goal.
func (b *builder) gcStarter() (id, fn string, forced bool) {
	byG := map[xtrace.GoID]time.Duration{}
	stacks := map[xtrace.GoID]xtrace.Stack{}
	for _, m := range b.tl.marks {
		o := b.overlap(m.start, m.end)
		if o == 0 {
			continue
		}
		if st := b.markStart(m); st != nil && st.g != xtrace.NoGoroutine {
			byG[st.g] += o
			stacks[st.g] = st.stack
		}
	}
	g, ok := maxKey(byG)
	if !ok {
		return "", "", false
	}
	id = "goroutine " + strconv.FormatInt(int64(g), 10)
	fs := b.stackFrames(stacks[g])
	if f, _ := b.cfg.program.placeFrame(fs); f.Func != "" {
		fn = shortFunc(f.Func)
	}
	for _, f := range fs {
		forced = forced || f.Func == "runtime.GC" || f.Func == "runtime/debug.FreeOSMemory"
	}
	return id, fn, forced
}
