package analysis

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	xtrace "golang.org/x/exp/trace"
)

// builder turns a timeline into a Diagnosis.
type builder struct {
	tl   *timeline
	span Span
	cfg  config

	// atWindowStart and atWindowEnd say whether the parsed generations
	// are the snapshot's first and last.
	atWindowStart, atWindowEnd bool

	// a and b bound the analyzed interval, in trace time.
	a, b xtrace.Time

	roles map[xtrace.GoID]Role
	order []xtrace.GoID

	// unknownWait is set when a goroutine of the span waited, for a reason
	// the trace does not say, during the interval.
	unknownWait bool
	// unnamedHolder is set when a goroutine that held the Ps while one
	// of the span's waited for them is named by its ID alone and was
	// created before the parsed generations: the generation it was
	// created in names it.
	unnamedHolder bool

	frames map[xtrace.Stack][]Frame
	gfuncs map[xtrace.GoID]string
	// ownFuncs and knownFuncs cache ownFunc and knownOwnFunc by
	// goroutine, kinFuncs kinFunc by entry function.
	ownFuncs, knownFuncs map[xtrace.GoID]string
	kinFuncs             map[string]string
	// kinPlaces caches unseenFunc by entry function and ownFunc.
	kinPlaces map[string]string

	// timeout is set when a timer ended most of the main goroutine's
	// dominant waits, timeoutWait long.
	timeout     Timeout
	timeoutWait time.Duration
}

// endSeen reports whether the parsed generations hold the span's end: its
// end marker or the end of its task.
func (b *builder) endSeen() bool {
	if len(b.tl.ends) > 0 {
		return true
	}
	if len(b.tl.starts) == 0 || b.tl.starts[0].task == xtrace.BackgroundTask {
		// Logged on a goroutine, outside any task: only a marker ends it.
		return false
	}
	rec := b.tl.tasks[b.tl.starts[0].task]
	return rec != nil && rec.end != 0
}

func (b *builder) build() (*Diagnosis, error) {
	tl := b.tl
	if len(tl.starts) == 0 && len(tl.ends) == 0 {
		return nil, fmt.Errorf("%w: span %s is not logged in the snapshot", ErrSpanNotFound, b.span.SpanID)
	}
	var start, end *marker
	if len(tl.starts) > 0 {
		start = &tl.starts[0]
	}
	if len(tl.ends) > 0 {
		end = &tl.ends[len(tl.ends)-1]
	}
	task := xtrace.BackgroundTask
	for _, m := range []*marker{end, start} {
		if m != nil && m.task != xtrace.BackgroundTask {
			task = m.task
		}
	}
	var rec *taskRec
	if task != xtrace.BackgroundTask {
		rec = tl.tasks[task]
	}
	mainG := xtrace.NoGoroutine
	if start != nil {
		mainG = start.g
	} else {
		mainG = end.g
	}

	// The span's interval in trace time: its own times when given, else its
	// markers, else unbounded (cut by the window).
	sT, eT := minTime, maxTime
	switch {
	case !b.span.Start.IsZero():
		sT = tl.toTrace(b.span.Start)
	case start != nil:
		sT = start.t
		if rec != nil && rec.begin != 0 && rec.begin < sT {
			sT = rec.begin
		}
	}
	switch {
	case !b.span.End.IsZero():
		eT = tl.toTrace(b.span.End)
	case end != nil:
		eT = end.t
		if rec != nil && rec.end > eT {
			eT = rec.end
		}
	case rec != nil && rec.end != 0:
		// The wrapper logs the end of a long span only: the task's end
		// is the span's.
		eT = rec.end
	}
	startCut := sT < tl.firstTs && b.atWindowStart
	endCut := eT > tl.lastTs && b.atWindowEnd
	b.a, b.b = max(sT, tl.firstTs), min(eT, tl.lastTs)
	if b.b < b.a {
		b.b = b.a
	}

	d := &Diagnosis{
		Span:          b.span,
		Status:        StatusComplete,
		Start:         tl.toWall(b.a),
		End:           tl.toWall(b.b),
		Duration:      b.b.Sub(b.a),
		MainGoroutine: int64(mainG),
	}
	if startCut || endCut {
		d.Status = StatusPartial
	}
	if !d.Span.TraceID.IsValid() {
		m := start
		if m == nil {
			m = end
		}
		var tid [16]byte
		if n, err := hex.Decode(tid[:], []byte(m.trace)); err == nil && n == len(tid) {
			d.Span.TraceID = tid
		}
	}
	if rec != nil {
		d.Task = uint64(task)
		if d.Span.Name == "" {
			d.Span.Name = rec.name
		}
	}
	if d.Span.Start.IsZero() && !startCut {
		d.Span.Start = d.Start
	}
	if d.Span.End.IsZero() && !endCut {
		d.Span.End = d.End
	}

	b.collectGoroutines(mainG, task, rec)
	for _, id := range b.order {
		g := b.goroutine(id)
		d.Goroutines = append(d.Goroutines, g)
		if g.Role != RoleWaker {
			d.GC.Assist += g.Buckets[StateGCAssist]
		}
	}
	// Main first, then by role, then the busiest.
	rank := map[Role]int{RoleMain: 0, RoleTask: 1, RoleChild: 2, RoleWaker: 3}
	slices.SortStableFunc(d.Goroutines, func(x, y Goroutine) int {
		if c := cmp.Compare(rank[x.Role], rank[y.Role]); c != 0 {
			return c
		}
		if c := cmp.Compare(y.Time, x.Time); c != 0 {
			return c
		}
		return cmp.Compare(x.ID, y.ID)
	})
	d.Episodes = b.episodes()
	b.gc(&d.GC)
	d.GOMAXPROCS = b.gomaxprocs()
	b.causes(d)
	d.Verdict = failedVerdict(d.Span.Error, b.verdict(d, startCut, endCut))
	d.Cause = b.cause(d)
	return d, nil
}

// collectGoroutines finds the goroutines that worked for the span and
// their roles.
func (b *builder) collectGoroutines(mainG xtrace.GoID, task xtrace.TaskID, rec *taskRec) {
	tl := b.tl
	b.roles = make(map[xtrace.GoID]Role)
	add := func(g xtrace.GoID, r Role) {
		if g == xtrace.NoGoroutine {
			return
		}
		if _, ok := b.roles[g]; !ok {
			b.roles[g] = r
			b.order = append(b.order, g)
		}
	}
	add(mainG, RoleMain)
	if rec != nil {
		for id, t := range tl.tasks {
			if b.descends(id, t, task) {
				for _, g := range t.gs {
					add(g, RoleTask)
				}
			}
		}
	}
	// Goroutines created during the span by its goroutines, transitively:
	// the edges are in time order, so a child's own children follow it.
	for _, e := range tl.creates {
		if e.t < b.a || e.t > b.b {
			continue
		}
		if r, ok := b.roles[e.creator]; ok && r != RoleWaker {
			add(e.child, RoleChild)
		}
	}
	n := len(b.order)
	for _, id := range b.order[:n] {
		g := tl.gs[id]
		if g == nil {
			continue
		}
		for i := range g.segs {
			s := &g.segs[i]
			if s.waker != xtrace.NoGoroutine && s.state != StateBlockedSleep && b.overlap(s.start, s.end) > 0 {
				add(s.waker, RoleWaker)
			}
		}
	}
}

// descends reports whether task id is task root or one of its subtasks
// (child spans have their own tasks, with the parent span's as parent).
func (b *builder) descends(id xtrace.TaskID, t *taskRec, root xtrace.TaskID) bool {
	for range 64 { // bounded: a corrupt trace may hold a cycle
		if id == root {
			return true
		}
		if t == nil || t.parent == xtrace.NoTask || t.parent == id {
			return false
		}
		id = t.parent
		t = b.tl.tasks[id]
	}
	return false
}

// overlap returns how much of [start, end] lies in the analyzed interval.
func (b *builder) overlap(start, end xtrace.Time) time.Duration {
	s, e := max(start, b.a), min(end, b.b)
	if e <= s {
		return 0
	}
	return e.Sub(s)
}

func (b *builder) goroutine(id xtrace.GoID) Goroutine {
	role := b.roles[id]
	g := Goroutine{ID: int64(id), Role: role}
	t := b.tl.gs[id]
	if t == nil {
		return g
	}
	for i := range t.segs {
		s := &t.segs[i]
		o := b.overlap(s.start, s.end)
		if o == 0 {
			continue
		}
		g.Buckets[s.state] += o
		if s.unknown && role != RoleWaker {
			b.unknownWait = true
		}
		start, end := b.tl.toWall(max(s.start, b.a)), b.tl.toWall(min(s.end, b.b))
		if n := len(g.Segments); n > 0 && g.Segments[n-1].State == s.state && !start.After(g.Segments[n-1].End) {
			g.Segments[n-1].End = end
		} else {
			g.Segments = append(g.Segments, Segment{Start: start, End: end, State: s.state})
		}
	}
	g.Time = g.Buckets.Total()
	g.Entry = entryFunc(t.entry)
	return g
}

// episodes returns the longest blocking episodes of the span's goroutines.
func (b *builder) episodes() []Episode {
	if b.cfg.topEpisodes == 0 {
		return nil
	}
	type cand struct {
		g *gtrack
		s *seg
		o time.Duration
	}
	var cands []cand
	for _, id := range b.order {
		if b.roles[id] == RoleWaker {
			continue
		}
		g := b.tl.gs[id]
		if g == nil {
			continue
		}
		for i := range g.segs {
			s := &g.segs[i]
			if !s.state.Blocked() || s.gstate == xtrace.GoRunning {
				continue
			}
			if o := b.overlap(s.start, s.end); o > 0 {
				cands = append(cands, cand{g, s, o})
			}
		}
	}
	slices.SortStableFunc(cands, func(x, y cand) int { return cmp.Compare(y.o, x.o) })
	if len(cands) > b.cfg.topEpisodes {
		cands = cands[:b.cfg.topEpisodes]
	}
	eps := make([]Episode, 0, len(cands))
	for _, c := range cands {
		ep := Episode{
			Goroutine: int64(c.g.id),
			State:     c.s.state,
			Reason:    c.s.reason,
			Start:     b.tl.toWall(max(c.s.start, b.a)),
			Duration:  c.o,
			Stack:     b.stackFrames(c.s.stack),
		}
		ep.Timeout = b.timeoutOf(c.s)
		if c.s.waker != xtrace.NoGoroutine {
			ep.Waker = &Waker{Goroutine: int64(c.s.waker), Stack: b.stackFrames(c.s.wakerStack)}
		}
		eps = append(eps, ep)
	}
	return eps
}

func (b *builder) gc(gc *GC) {
	phase := func(kind string, iv interval) GCPhase {
		return GCPhase{Kind: kind, Start: b.tl.toWall(max(iv.start, b.a)), End: b.tl.toWall(min(iv.end, b.b))}
	}
	for _, m := range b.tl.marks {
		if o := b.overlap(m.start, m.end); o > 0 {
			gc.MarkOverlap += o
			gc.Cycles++
			gc.Phases = append(gc.Phases, phase("mark", m))
		}
	}
	for _, s := range b.tl.stws {
		if o := b.overlap(s.start, s.end); o > 0 {
			gc.STWOverlap += o
			gc.STWs++
			p := phase("stw", s)
			p.Reason = stwReason(s.name)
			gc.Phases = append(gc.Phases, p)
		}
	}
	gc.STW = b.stwCauses()
	slices.SortStableFunc(gc.Phases, func(x, y GCPhase) int { return x.Start.Compare(y.Start) })
}

func (b *builder) gomaxprocs() int {
	n := 0
	for _, p := range b.tl.procs {
		if p.t > b.b && n != 0 {
			break
		}
		n = p.n
	}
	return n
}

// maxFrames bounds the frames kept per stack.
const maxFrames = 32

// stackFrames converts a stack, innermost frame first.
func (b *builder) stackFrames(stk xtrace.Stack) []Frame {
	if stk == xtrace.NoStack {
		return nil
	}
	if fs, ok := b.frames[stk]; ok {
		return fs
	}
	var fs []Frame
	for f := range stk.Frames() {
		if len(fs) == maxFrames {
			break
		}
		fs = append(fs, Frame{Func: f.Func, File: f.File, Line: int(min(f.Line, 1<<31-1))})
	}
	if b.frames == nil {
		b.frames = make(map[xtrace.Stack][]Frame)
	}
	b.frames[stk] = fs
	return fs
}

// causes fills in what the verdict explains the main goroutine's dominant
// state with: the wait chain or the timer behind a wait, the goroutines
// that ran while it waited for a P.
func (b *builder) causes(d *Diagnosis) {
	mg := d.main()
	if mg == nil || mg.Time <= 0 {
		return
	}
	main := b.tl.gs[xtrace.GoID(mg.ID)]
	if main == nil {
		return
	}
	switch state, _ := mg.Buckets.Dominant(); state {
	case StateRunnable:
		d.RanWhileRunnable = b.holders(main)
	case StateRunning, StateGCAssist, StateSyscall, StateBlockedSleep, StateBlockedNetwork:
		// The kernel, a timer or the network poller ends these.
	default:
		d.Chain, b.timeout, b.timeoutWait = b.chain(main, state)
		if b.timeout == "" {
			if w, ok := b.deadlineEnded(main, state); ok {
				b.timeout, b.timeoutWait = TimeoutDeadline, w
			}
		}
	}
}

// deadlineSlack is how close to a context deadline's expiry a wait must
// end for the deadline to take the blame.
const deadlineSlack = 2 * time.Millisecond

// deadlineEnded reports whether a context deadline ended the main
// goroutine's longest wait in state, though another goroutine woke it: the
// deadline's timer woke one of the span's goroutines (the watcher of a
// gRPC stream, say) at the moment the wait ended, and the goroutine that
// woke the main one only passed the news on (a connection's reader,
// bringing the server's cancellation of the same deadline). It returns the
// wait's length.
func (b *builder) deadlineEnded(main *gtrack, state State) (time.Duration, bool) {
	s := b.longest(main, state)
	if s == nil || !s.woken || s.waker == xtrace.NoGoroutine {
		return 0, false
	}
	for _, id := range b.order {
		if b.roles[id] == RoleWaker {
			continue
		}
		g := b.tl.gs[id]
		if g == nil {
			continue
		}
		for i := range g.segs {
			o := &g.segs[i]
			if o.end+xtrace.Time(deadlineSlack) < s.end || o.end > s.end+xtrace.Time(deadlineSlack) {
				continue
			}
			if b.timeoutOf(o) == TimeoutDeadline {
				return b.overlap(s.start, s.end), true
			}
		}
	}
	return 0, false
}
