package analysis

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	xtrace "golang.org/x/exp/trace"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

const (
	minTime = xtrace.Time(math.MinInt64)
	maxTime = xtrace.Time(math.MaxInt64)
)

// seg is a stretch of time a goroutine spent in one State.
type seg struct {
	start, end xtrace.Time
	state      State
	gstate     xtrace.GoState
	// unknown marks a wait that began before the parsed generations and
	// whose cause neither a reason nor a stack tells.
	unknown bool
	reason  string
	// stack is where the goroutine blocked or entered a syscall; for a
	// running stretch, where it stopped running.
	stack xtrace.Stack
	// waker is the goroutine whose event made a waiting goroutine runnable
	// (NoGoroutine when none, e.g. the network poller), and wakerStack its
	// stack at that moment.
	waker      xtrace.GoID
	wakerStack xtrace.Stack
	// woken is set when a wait ended by the goroutine becoming runnable,
	// whether or not a goroutine did it.
	woken bool
}

// onCPU reports whether the goroutine held a P during s: running, or
// running a GC mark assist. A goroutine parked for assist credit is in
// StateGCAssist too, but waits.
func (s *seg) onCPU() bool { return s.gstate == xtrace.GoRunning }

// gtrack follows one goroutine through the trace.
type gtrack struct {
	id       xtrace.GoID
	open     bool // cur is the goroutine's current state
	cur      seg
	inAssist bool
	// entry is any stack of the goroutine; its root frame names it.
	entry xtrace.Stack
	// started is the goroutine's start (its entry function's frame), when
	// the parsed generations hold its creation.
	started xtrace.Stack
	segs    []seg
	// byTimer is set for a goroutine that a timer started: the function
	// of a time.AfterFunc (context deadlines among them).
	byTimer bool
	// creator started the goroutine, at createStack, when the parsed
	// generations hold its creation.
	creator     xtrace.GoID
	createStack xtrace.Stack
	// created is set when the parsed generations hold the goroutine's
	// creation.
	created bool
	// lastTaskEnd is the task the goroutine ended last, at lastTaskEndT
	// (0 when none): an end marker logged outside any task belongs to it.
	lastTaskEnd  xtrace.TaskID
	lastTaskEndT xtrace.Time
}

// taskEndSlack is how soon after its goroutine ended a task an end marker
// logged outside any task must follow to belong to that task: the wrapper
// and the span processor log it right after the span's task ends.
const taskEndSlack = xtrace.Time(time.Millisecond)

// endedTask returns the task that goroutine g ended last, if it did so at
// most taskEndSlack before t.
func endedTask(g xtrace.GoID, t xtrace.Time, last func(xtrace.GoID) (xtrace.TaskID, xtrace.Time)) (xtrace.TaskID, bool) {
	task, at := last(g)
	if at == 0 || t < at || t-at > taskEndSlack {
		return 0, false
	}
	return task, true
}

type taskRec struct {
	name       string
	parent     xtrace.TaskID
	begin, end xtrace.Time // 0 when not in the trace
	gs         []xtrace.GoID
}

func (t *taskRec) addG(g xtrace.GoID) {
	if g == xtrace.NoGoroutine {
		return
	}
	for _, x := range t.gs {
		if x == g {
			return
		}
	}
	t.gs = append(t.gs, g)
}

type marker struct {
	t     xtrace.Time
	g     xtrace.GoID
	task  xtrace.TaskID
	trace string // the trace ID in hex
}

type createEdge struct {
	t              xtrace.Time
	creator, child xtrace.GoID
}

type interval struct {
	start, end xtrace.Time
	name       string
	// g started a stop-the-world, at stack.
	g     xtrace.GoID
	stack xtrace.Stack
}

type syncPoint struct {
	trace xtrace.Time
	wall  time.Time
}

type sample struct {
	t     xtrace.Time
	g     xtrace.GoID
	stack xtrace.Stack
}

type procsPoint struct {
	t xtrace.Time
	n int
}

// timeline is what one pass over the parsed generations collects: every
// goroutine's states around the span, tasks, goroutine creations, GC phases
// and the span's own log markers.
type timeline struct {
	spanHex, traceHex string // traceHex is "" to match any trace

	// Segments entirely outside [lo, hi] are dropped as they close; the
	// bounds are the span's interval when it is known up front, plus slack.
	lo, hi xtrace.Time
	// Wall-clock span bounds, converted to lo and hi at the first clock
	// snapshot; zero when unknown.
	wantStart, wantEnd time.Time

	firstTs, syncTs, lastTs xtrace.Time
	syncs                   []syncPoint

	gs    map[xtrace.GoID]*gtrack
	tasks map[xtrace.TaskID]*taskRec
	// Direct-mapped caches in front of gs and tasks: most events name a
	// goroutine or task seen a moment before, and the map lookups were a
	// tenth of a diagnosis.
	gCache    [256]*gtrack
	taskCache [256]struct {
		id  xtrace.TaskID
		rec *taskRec
	}
	creates  []createEdge
	samples  []sample
	procs    []procsPoint
	marks    []interval
	markOpen xtrace.Time // start of the open mark phase, or 0
	stws     []interval
	stwOpen  interval

	starts, ends []marker
	// peers are the start and end markers of the other spans of the
	// span's trace (of any trace while it is unknown), at most maxPeers:
	// the goroutines that served the same request, in this process.
	peers []marker
}

// maxPeers bounds timeline.peers.
const maxPeers = 4096

func newTimeline(span Span) *timeline {
	tl := &timeline{
		spanHex: hex.EncodeToString(span.SpanID[:]),
		lo:      minTime,
		hi:      maxTime,
		gs:      make(map[xtrace.GoID]*gtrack),
		tasks:   make(map[xtrace.TaskID]*taskRec),
	}
	if span.TraceID.IsValid() {
		tl.traceHex = hex.EncodeToString(span.TraceID[:])
	}
	if !span.Start.IsZero() && !span.End.IsZero() && !span.End.Before(span.Start) {
		tl.wantStart, tl.wantEnd = span.Start, span.End
	}
	return tl
}

// boundSlack widens [lo, hi] to absorb the error of converting wall-clock
// span times to trace time (well under a millisecond).
const boundSlack = 2 * time.Millisecond

// read feeds every event of r through the timeline.
func (tl *timeline) read(r io.Reader) error {
	if err := readEvents(r, tl.event); err != nil {
		return err
	}
	tl.closeAll()
	for _, g := range tl.gs {
		inferUnwokenWaits(g)
	}
	return nil
}

// inferUnwokenWaits gives g's waits older than the parsed generations that
// no goroutine ended (the network poller or a timer did) the state of its
// other such waits, when those are all of one: a goroutine that waits in a
// loop (a connection's reader on the network, a poller asleep) waited
// there before the trace began too. A goroutine woken by another tells its
// wait by what that one did (wakeBlockState); one the poller or a timer
// woke, only by its own habits.
func inferUnwokenWaits(g *gtrack) {
	known := StateBlockedOther
	for i := range g.segs {
		s := &g.segs[i]
		if s.unknown || s.gstate != xtrace.GoWaiting || !s.woken || s.waker != xtrace.NoGoroutine {
			continue
		}
		switch {
		case s.state != StateBlockedNetwork && s.state != StateBlockedSleep:
			return // woken by no goroutine, but neither on the network nor asleep
		case known == StateBlockedOther:
			known = s.state
		case known != s.state:
			return
		}
	}
	if known == StateBlockedOther {
		return
	}
	for i := range g.segs {
		if s := &g.segs[i]; s.unknown && s.state == StateBlockedOther && s.woken && s.waker == xtrace.NoGoroutine {
			s.state = known // still unknown: Analyze still looks further back
		}
	}
}

// readEvents parses the trace in r and hands each event to f, in order. A
// parse error, or a panic in the parser (which it should not do but might
// on corrupt input), is returned as an error wrapping ErrMalformed. f
// must not keep the *Event it is handed past its return.
func readEvents(r io.Reader, f func(*xtrace.Event)) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: parser failed: %v", ErrMalformed, p)
		}
	}()
	tr, err := xtrace.NewReader(r)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// One Event, reused: f must not keep ev. Passing a fresh one's
	// address made every event a heap allocation (12 MB per diagnosis at
	// the end of a 32 MiB snapshot).
	var ev xtrace.Event
	for {
		ev, err = tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		f(&ev)
	}
}

func (tl *timeline) event(ev *xtrace.Event) {
	t := ev.Time()
	tl.lastTs = t
	switch ev.Kind() {
	case xtrace.EventSync:
		tl.syncTs = t
		if tl.firstTs == 0 {
			tl.firstTs = t
		}
		if cs := ev.Sync().ClockSnapshot; cs != nil {
			tl.syncs = append(tl.syncs, syncPoint{cs.Trace, cs.Wall})
			if len(tl.syncs) == 1 && !tl.wantStart.IsZero() {
				tl.lo = tl.toTrace(tl.wantStart.Add(-boundSlack))
				tl.hi = tl.toTrace(tl.wantEnd.Add(boundSlack))
			}
		}
	case xtrace.EventStateTransition:
		tl.transition(ev)
	case xtrace.EventRangeBegin, xtrace.EventRangeActive, xtrace.EventRangeEnd:
		tl.rangeEvent(ev)
	case xtrace.EventMetric:
		if m := ev.Metric(); m.Name == "/sched/gomaxprocs:threads" && m.Value.Kind() == xtrace.ValueUint64 {
			tl.procs = append(tl.procs, procsPoint{t, int(min(m.Value.Uint64(), math.MaxInt32))})
		}
	case xtrace.EventStackSample:
		if g := ev.Goroutine(); g != xtrace.NoGoroutine && tl.keep(t, t) {
			tl.samples = append(tl.samples, sample{t, g, ev.Stack()})
		}
	case xtrace.EventTaskBegin, xtrace.EventTaskEnd:
		task := ev.Task()
		rec := tl.task(task.ID)
		if task.Type != "" {
			rec.name = task.Type
		}
		if task.Parent != xtrace.NoTask {
			rec.parent = task.Parent
		}
		if ev.Kind() == xtrace.EventTaskBegin {
			rec.begin = t
		} else {
			rec.end = t
			if g := ev.Goroutine(); g != xtrace.NoGoroutine {
				gt := tl.g(g)
				gt.lastTaskEnd, gt.lastTaskEndT = task.ID, t
			}
		}
		rec.addG(ev.Goroutine())
	case xtrace.EventRegionBegin, xtrace.EventRegionEnd:
		if id := ev.Region().Task; id != xtrace.BackgroundTask && id != xtrace.NoTask {
			tl.task(id).addG(ev.Goroutine())
		}
	case xtrace.EventLog:
		l := ev.Log()
		if l.Task != xtrace.BackgroundTask && l.Task != xtrace.NoTask {
			tl.task(l.Task).addG(ev.Goroutine())
		}
		if l.Category != otelfr.LogCategory {
			break
		}
		if _, tr, sp, ok := splitMarker(l.Message); ok && sp != tl.spanHex && (tl.traceHex == "" || tr == tl.traceHex) && len(tl.peers) < maxPeers {
			tl.peers = append(tl.peers, marker{t: t, g: ev.Goroutine(), task: l.Task, trace: tr})
		}
		if kind, tr, ok := matchMarker(l.Message, tl.traceHex, tl.spanHex); ok {
			m := marker{t: t, g: ev.Goroutine(), task: l.Task, trace: tr}
			if m.task == xtrace.NoTask {
				m.task = xtrace.BackgroundTask
			}
			if m.task == xtrace.BackgroundTask && kind == markEnd {
				if task, ok := endedTask(m.g, t, tl.lastTaskEnd); ok {
					m.task = task
				}
			}
			if kind == markStart {
				tl.starts = append(tl.starts, m)
			} else {
				tl.ends = append(tl.ends, m)
			}
		}
	}
}

type markKind uint8

const (
	markStart markKind = iota
	markEnd
)

// matchMarker parses an otelfr.LogCategory message, "start <trace> <span>"
// or "end <trace> <span>", and reports whether it names the span (any trace
// when traceHex is empty), and with which trace ID.
func matchMarker(msg, traceHex, spanHex string) (kind markKind, tr string, ok bool) {
	if !strings.HasSuffix(msg, spanHex) {
		// Every span's markers pass by: most end in another span ID.
		return 0, "", false
	}
	kind, tr, sp, ok := splitMarker(msg)
	if !ok || sp != spanHex || (traceHex != "" && tr != traceHex) {
		return 0, "", false
	}
	return kind, tr, true
}

// splitMarker splits an otelfr.LogCategory message, "start <trace> <span>"
// or "end <trace> <span>".
func splitMarker(msg string) (kind markKind, tr, sp string, ok bool) {
	word, rest, ok := strings.Cut(msg, " ")
	if !ok {
		return 0, "", "", false
	}
	tr, sp, ok = strings.Cut(rest, " ")
	if !ok {
		return 0, "", "", false
	}
	switch word {
	case "start":
		return markStart, tr, sp, true
	case "end":
		return markEnd, tr, sp, true
	}
	return 0, "", "", false
}

func (tl *timeline) task(id xtrace.TaskID) *taskRec {
	c := &tl.taskCache[uint64(id)%uint64(len(tl.taskCache))]
	if c.rec != nil && c.id == id {
		return c.rec
	}
	rec := tl.tasks[id]
	if rec == nil {
		rec = &taskRec{parent: xtrace.NoTask}
		tl.tasks[id] = rec
	}
	c.id, c.rec = id, rec
	return rec
}

// lastTaskEnd returns the task goroutine id ended last, and when.
func (tl *timeline) lastTaskEnd(id xtrace.GoID) (xtrace.TaskID, xtrace.Time) {
	if g := tl.gs[id]; g != nil {
		return g.lastTaskEnd, g.lastTaskEndT
	}
	return 0, 0
}

func (tl *timeline) g(id xtrace.GoID) *gtrack {
	c := &tl.gCache[uint64(id)%uint64(len(tl.gCache))]
	if g := *c; g != nil && g.id == id {
		return g
	}
	g := tl.gs[id]
	if g == nil {
		g = &gtrack{id: id}
		tl.gs[id] = g
	}
	*c = g
	return g
}

// keep reports whether [start, end] meets the interval of interest.
func (tl *timeline) keep(start, end xtrace.Time) bool {
	return end >= tl.lo && start <= tl.hi
}

func (tl *timeline) transition(ev *xtrace.Event) {
	st := ev.StateTransition()
	if st.Resource.Kind != xtrace.ResourceGoroutine {
		return
	}
	from, to := st.Goroutine()
	if from == to {
		// A status event repeating what is known, at a generation's start.
		return
	}
	t := ev.Time()
	g := tl.g(st.Resource.Goroutine())
	if g.entry == xtrace.NoStack && st.Stack != xtrace.NoStack {
		g.entry = st.Stack
	}
	switch from {
	case xtrace.GoUndetermined:
		// The goroutine existed before the parsed generations began and
		// has been in state to since then; a wait's reason is not recorded.
		if g.open {
			tl.closeSeg(g, t)
		}
		tl.openSeg(g, tl.syncTs, to, "", st.Stack, true)
		return
	case xtrace.GoNotExist:
		creator := ev.Goroutine()
		if creator != xtrace.NoGoroutine && tl.keep(t, t) {
			tl.creates = append(tl.creates, createEdge{t, creator, g.id})
		}
		g.creator, g.createStack, g.started, g.created = creator, ev.Stack(), st.Stack, true
		// Every go statement runs on a goroutine; the runtime starts a
		// goroutine from its scheduler only to run a time.AfterFunc
		// function.
		g.byTimer = creator == xtrace.NoGoroutine || createdByTimer(ev.Stack())
		st.Stack = xtrace.NoStack // the new goroutine's start, not where it waits
	}
	// prev is where the goroutine was when it left its last state: where
	// a runnable goroutine waits for a P.
	prev := xtrace.NoStack
	if g.open {
		switch {
		case from == xtrace.GoWaiting && to == xtrace.GoRunnable:
			g.cur.woken = true
			if w := ev.Goroutine(); w != g.id && ev.Stack() != xtrace.NoStack {
				g.cur.waker, g.cur.wakerStack = w, ev.Stack()
				if g.cur.unknown {
					// A wait older than the parsed generations, which
					// carry neither its reason nor its stack: what the
					// waker did to end it (unlocked a mutex, say)
					// tells what it was. It stays unknown, so that
					// Analyze still looks a generation further back.
					if st, ok := wakeBlockState(ev.Stack()); ok {
						g.cur.state = st
					}
				}
			}
		case from == xtrace.GoRunning && st.Stack != xtrace.NoStack:
			g.cur.stack = st.Stack
		}
		prev = g.cur.stack
		tl.closeSeg(g, t)
	}
	switch to {
	case xtrace.GoNotExist:
		g.inAssist = false
	case xtrace.GoWaiting:
		tl.openSeg(g, t, to, st.Reason, st.Stack, false)
	case xtrace.GoSyscall:
		tl.openSeg(g, t, to, "", st.Stack, false)
	case xtrace.GoRunnable:
		tl.openSeg(g, t, to, "", prev, false)
	default:
		tl.openSeg(g, t, to, "", xtrace.NoStack, false)
	}
}

func (tl *timeline) openSeg(g *gtrack, t xtrace.Time, gs xtrace.GoState, reason string, stk xtrace.Stack, undetermined bool) {
	s := seg{start: t, gstate: gs, reason: reason, stack: stk, waker: xtrace.NoGoroutine}
	switch gs {
	case xtrace.GoRunning:
		s.state = StateRunning
		if g.inAssist {
			s.state = StateGCAssist
		}
	case xtrace.GoRunnable:
		s.state = StateRunnable
	case xtrace.GoSyscall:
		s.state = StateSyscall
	case xtrace.GoWaiting:
		if undetermined {
			s.state, s.unknown = stackBlockState(stk)
			s.unknown = !s.unknown
		} else {
			s.state = blockState(reason)
		}
	default:
		return
	}
	g.cur, g.open = s, true
}

func (tl *timeline) closeSeg(g *gtrack, t xtrace.Time) {
	g.open = false
	g.cur.end = t
	if g.cur.end > g.cur.start && tl.keep(g.cur.start, g.cur.end) {
		g.segs = append(g.segs, g.cur)
	}
}

// setAssist starts or ends a GC mark assist of g. A running goroutine's
// time is split there: assist work is StateGCAssist, not StateRunning. stk
// is where an assist began: the allocation that triggered it.
func (tl *timeline) setAssist(g *gtrack, on bool, t xtrace.Time, stk xtrace.Stack) {
	if g.inAssist == on {
		return
	}
	g.inAssist = on
	if g.open && g.cur.gstate == xtrace.GoRunning {
		tl.closeSeg(g, t)
		tl.openSeg(g, t, xtrace.GoRunning, "", stk, false)
	}
}

func (tl *timeline) rangeEvent(ev *xtrace.Event) {
	r := ev.Range()
	t := ev.Time()
	kind := ev.Kind()
	switch {
	case r.Name == "GC mark assist":
		if r.Scope.Kind != xtrace.ResourceGoroutine {
			return
		}
		g := tl.g(r.Scope.Goroutine())
		tl.setAssist(g, kind != xtrace.EventRangeEnd, t, ev.Stack())
	case r.Name == "GC concurrent mark phase":
		switch kind {
		case xtrace.EventRangeBegin:
			tl.markOpen = t
		case xtrace.EventRangeActive:
			if tl.markOpen == 0 {
				tl.markOpen = tl.syncTs
			}
		case xtrace.EventRangeEnd:
			if tl.markOpen != 0 && tl.keep(tl.markOpen, t) {
				tl.marks = append(tl.marks, interval{start: tl.markOpen, end: t, name: r.Name})
			}
			tl.markOpen = 0
		}
	case strings.HasPrefix(r.Name, "stop-the-world"):
		var by xtrace.GoID = xtrace.NoGoroutine
		if r.Scope.Kind == xtrace.ResourceGoroutine {
			by = r.Scope.Goroutine()
		}
		switch kind {
		case xtrace.EventRangeBegin:
			tl.stwOpen = interval{start: t, name: r.Name, g: by, stack: ev.Stack()}
		case xtrace.EventRangeActive:
			if tl.stwOpen.start == 0 {
				tl.stwOpen = interval{start: tl.syncTs, name: r.Name, g: by}
			}
		case xtrace.EventRangeEnd:
			// Every stop is kept, not only those near the span: a GC
			// cycle's is looked up from its later phases.
			if tl.stwOpen.start != 0 {
				tl.stwOpen.end = t
				tl.stws = append(tl.stws, tl.stwOpen)
			}
			tl.stwOpen = interval{}
		}
	}
}

// closeAll ends what is still open at the end of the parsed trace.
func (tl *timeline) closeAll() {
	for _, g := range tl.gs {
		if g.open {
			tl.closeSeg(g, tl.lastTs)
			g.open = true // still in that state: the trace just ends
		}
	}
	if tl.markOpen != 0 && tl.keep(tl.markOpen, tl.lastTs) {
		tl.marks = append(tl.marks, interval{start: tl.markOpen, end: tl.lastTs, name: "GC concurrent mark phase"})
	}
	if tl.stwOpen.start != 0 && tl.keep(tl.stwOpen.start, tl.lastTs) {
		tl.stwOpen.end = tl.lastTs
		tl.stws = append(tl.stws, tl.stwOpen)
	}
}

// syncFor returns the clock snapshot that applies at trace time t: the
// latest one taken at or before it.
func (tl *timeline) syncFor(t xtrace.Time) (syncPoint, bool) {
	if len(tl.syncs) == 0 {
		return syncPoint{}, false
	}
	s := tl.syncs[0]
	for _, x := range tl.syncs[1:] {
		if x.trace > t {
			break
		}
		s = x
	}
	return s, true
}

// toWall converts trace time to wall-clock time.
func (tl *timeline) toWall(t xtrace.Time) time.Time {
	s, ok := tl.syncFor(t)
	if !ok {
		return time.Time{}
	}
	return s.wall.Add(t.Sub(s.trace))
}

// toTrace converts wall-clock time to trace time, with the clock snapshot
// whose wall time is the latest at or before w.
func (tl *timeline) toTrace(w time.Time) xtrace.Time {
	if len(tl.syncs) == 0 {
		return 0
	}
	s := tl.syncs[0]
	for _, x := range tl.syncs[1:] {
		if x.wall.After(w) {
			break
		}
		s = x
	}
	return s.trace + xtrace.Time(w.Sub(s.wall))
}
