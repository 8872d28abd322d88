package analysis

import (
	"cmp"
	"slices"
	"time"

	xtrace "golang.org/x/exp/trace"
)

// maxChainDepth bounds a wait chain: a span seldom waits through more
// goroutines than that, and a longer chain no longer fits a verdict.
const maxChainDepth = 4

// Hop is one goroutine of a wait chain: it ended the wait of the one
// before (the main goroutine for the first hop), and Hop tells what it did
// while that one waited.
type Hop struct {
	Goroutine int64 `json:"goroutine"`
	// Func is where the goroutine ended the wait: the first frame of its
	// stack at that moment in the program's own code (see WithProgram), or
	// of a library when the stack has none.
	Func string `json:"func,omitempty"`
	// State is what the goroutine mostly did while the previous one
	// waited for it, Duration how long, and Place where (named as Func
	// is).
	State    State         `json:"state"`
	Duration time.Duration `json:"duration"`
	Place    string        `json:"place,omitempty"`
	// Timeout is set when the goroutine's own wait (State) was mostly
	// ended by a timer: the chain ends there.
	Timeout Timeout `json:"timeout,omitempty"`

	// RanWhileRunnable is, for a last hop that mostly waited for a P, who
	// held the Ps meanwhile, as Diagnosis.RanWhileRunnable: the root cause
	// is theirs.
	RanWhileRunnable []FuncTime `json:"ran_while_runnable,omitempty"`

	placeInProgram bool // Place is the program's own code
}

// window is a stretch of trace time; a hop is examined over the windows in
// which the previous goroutine waited for it.
type window struct{ start, end xtrace.Time }

// Windows are kept in time order and disjoint, so that the ones meeting a
// stretch of time are found by binary search.

// meeting returns the windows of ws that may meet [start, end].
func meeting(start, end xtrace.Time, ws []window) []window {
	i, _ := slices.BinarySearchFunc(ws, start, func(w window, t xtrace.Time) int { return cmp.Compare(w.end, t) })
	j, _ := slices.BinarySearchFunc(ws[i:], end, func(w window, t xtrace.Time) int { return cmp.Compare(w.start, t) })
	return ws[i : i+j]
}

// overlapIn returns how much of [start, end] lies in ws.
func overlapIn(start, end xtrace.Time, ws []window) time.Duration {
	var d time.Duration
	for _, w := range meeting(start, end, ws) {
		if s, e := max(start, w.start), min(end, w.end); e > s {
			d += e.Sub(s)
		}
	}
	return d
}

// clipTo appends to out the parts of [start, end] inside ws.
func clipTo(start, end xtrace.Time, ws []window, out []window) []window {
	for _, w := range meeting(start, end, ws) {
		if s, e := max(start, w.start), min(end, w.end); e > s {
			out = append(out, window{s, e})
		}
	}
	return out
}

// waitEnd is what ended a wait: a goroutine, or a timer.
type waitEnd struct {
	g       xtrace.GoID
	timeout Timeout
}

// keyWait returns what ended most of g's time in state within ws (the
// goroutine, or the timer), the parts of ws it covers, and how long they
// are. ok is false when none of that time ended by a known cause.
func (b *builder) keyWait(g *gtrack, state State, ws []window) (end waitEnd, in []window, d time.Duration, ok bool) {
	byEnd := map[waitEnd]time.Duration{}
	for i := range g.segs {
		s := &g.segs[i]
		if s.state != state {
			continue
		}
		o := overlapIn(s.start, s.end, ws)
		if o == 0 {
			continue
		}
		e := waitEnd{g: xtrace.NoGoroutine, timeout: b.timeoutOf(s)}
		if e.timeout == "" {
			if s.waker == xtrace.NoGoroutine {
				continue
			}
			e.g = s.waker
		}
		byEnd[e] += o
	}
	keys := make([]waitEnd, 0, len(byEnd))
	for k := range byEnd {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y waitEnd) int {
		if c := cmp.Compare(byEnd[y], byEnd[x]); c != 0 {
			return c
		}
		if c := cmp.Compare(x.g, y.g); c != 0 {
			return c
		}
		return cmp.Compare(x.timeout, y.timeout)
	})
	if len(keys) == 0 {
		return waitEnd{}, nil, 0, false
	}
	end = keys[0]
	for i := range g.segs {
		s := &g.segs[i]
		if s.state != state {
			continue
		}
		e := waitEnd{g: xtrace.NoGoroutine, timeout: b.timeoutOf(s)}
		if e.timeout == "" {
			e.g = s.waker
		}
		if e == end {
			in = clipTo(s.start, s.end, ws, in)
		}
	}
	return end, in, byEnd[end], true
}

// followed reports whether a chain goes on past a goroutine that was
// mostly in state: a wait that another goroutine ends. A goroutine that ran,
// waited for a P, made a system call, slept or waited on the network is
// where the time went.
func followed(state State) bool {
	switch state {
	case StateBlockedChan, StateBlockedSelect, StateBlockedMutex, StateBlockedCond, StateBlockedOther:
		return true
	}
	return false
}

// chain follows the waits of g in state: who ended most of them, what that
// goroutine did meanwhile, who ended its own wait, and so on, to a
// goroutine that was doing the work (see followed), at most maxChainDepth
// hops, no goroutine twice. timeout is set, and the chain empty, when a
// timer ended most of g's waits; waited is then how long they were.
func (b *builder) chain(g *gtrack, state State) (hops []Hop, timeout Timeout, waited time.Duration) {
	ws := []window{{b.a, b.b}}
	seen := map[xtrace.GoID]bool{g.id: true}
	cur, st := g, state
	for len(hops) < maxChainDepth {
		end, in, d, ok := b.keyWait(cur, st, ws)
		if !ok {
			break
		}
		if end.timeout != "" {
			if len(hops) == 0 {
				return nil, end.timeout, d
			}
			hops[len(hops)-1].Timeout = end.timeout
			break
		}
		w := b.tl.gs[end.g]
		if w == nil || seen[end.g] {
			break
		}
		seen[end.g] = true
		fn, fnClass := b.wakeFunc(cur, st, end.g, ws)
		hop := Hop{Goroutine: int64(end.g), Func: fn}
		var bk Buckets
		for i := range w.segs {
			s := &w.segs[i]
			bk[s.state] += overlapIn(s.start, s.end, in)
		}
		hop.State, hop.Duration = bk.Dominant()
		if hop.Duration == 0 {
			hops = append(hops, hop)
			break
		}
		var placeClass frameClass
		hop.Place, placeClass = b.placeIn(w, hop.State, in)
		hop.placeInProgram = placeClass == classProgram
		if fnClass != classProgram && placeClass == classProgram {
			// The wake-up came from library code alone (a deferred
			// errgroup done, say): name the goroutine by its program's
			// work instead.
			hop.Func = hop.Place
		}
		if hop.State == StateRunnable {
			hop.RanWhileRunnable = b.holdersIn(w, in)
		}
		hops = append(hops, hop)
		if !followed(hop.State) {
			break
		}
		cur, st, ws = w, hop.State, in
	}
	return hops, "", 0
}

// wakeFunc names where waker ended g's waits in state within ws: the place
// of its stacks at those moments, the longest waits weighing most.
func (b *builder) wakeFunc(g *gtrack, state State, waker xtrace.GoID, ws []window) (string, frameClass) {
	byFunc := map[string]time.Duration{}
	best := numFrameClasses
	for i := range g.segs {
		s := &g.segs[i]
		if s.state != state || s.waker != waker {
			continue
		}
		o := overlapIn(s.start, s.end, ws)
		if o == 0 {
			continue
		}
		f, c := b.cfg.program.whoFrame(b.stackFrames(s.wakerStack))
		if f.Func == "" {
			continue
		}
		if c < best {
			clear(byFunc)
			best = c
		}
		if c == best {
			byFunc[shortFunc(f.Func)] += o
		}
	}
	f, _ := maxKey(byFunc)
	return f, best
}

// placeIn names where g spent its time in state within ws: the place of
// the stacks of those stretches (for running, its CPU samples when the
// trace has them), the longest weighing most, preferring the program's
// code over a library's to the runtime's. With no stack in those
// stretches, the goroutine's entry function, when the trace holds its
// start: any other stack of it is from another time, and would name a
// place the goroutine was not in (a wait older than the trace, ended in
// it, has no stack).
func (b *builder) placeIn(g *gtrack, state State, ws []window) (string, frameClass) {
	byFunc := map[string]time.Duration{}
	best := numFrameClasses
	add := func(stk xtrace.Stack, d time.Duration) {
		f, c := b.cfg.program.placeFrame(b.stackFrames(stk))
		if f.Func == "" || d <= 0 {
			return
		}
		if c < best {
			clear(byFunc)
			best = c
		}
		if c == best {
			byFunc[shortFunc(f.Func)] += d
		}
	}
	if state == StateRunning {
		for _, s := range b.tl.samples {
			if s.g == g.id && overlapIn(s.t, s.t+1, ws) > 0 {
				add(s.stack, time.Millisecond)
			}
		}
	}
	if len(byFunc) == 0 {
		for i := range g.segs {
			s := &g.segs[i]
			if s.state == state {
				add(s.stack, overlapIn(s.start, s.end, ws))
			}
		}
	}
	if len(byFunc) == 0 && g.started != xtrace.NoStack {
		add(g.started, 1)
	}
	f, _ := maxKey(byFunc)
	return f, best
}
