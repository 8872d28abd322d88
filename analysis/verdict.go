package analysis

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	xtrace "golang.org/x/exp/trace"
)

// The verdict describes the main goroutine: its buckets add up to the span's
// duration, so "78% of 240 ms" is a share of the span the user sees, where a
// sum over goroutines that ran in parallel would count time twice. The
// other goroutines enter the verdict as what the main goroutine waited for:
// the waker of its dominant wait and, for runnable time, the goroutine that
// used the CPU.

// failedVerdict puts a failed span's error summary ahead of its timing:
// "error: SUMMARY; then TIMING", or "error: SUMMARY" without a timing. It
// returns timing when the span did not fail.
func failedVerdict(summary, timing string) string {
	switch {
	case summary == "":
		return timing
	case timing == "":
		return "error: " + summary
	}
	return "error: " + summary + "; then " + timing
}

// Thresholds for the verdict's GC clause, as shares of the interval.
const (
	gcMarkNotable = 0.2
	// gcForcedNotable is gcMarkNotable for collections the program asked
	// for (runtime.GC, debug.FreeOSMemory): avoidable, so worth naming
	// sooner.
	gcForcedNotable = 0.01
	gcSTWNotable    = 0.05
	// stwAskedNotable is gcSTWNotable for the stops the program asked
	// for.
	stwAskedNotable = 0.01
	assistNotable   = 0.05
	// stwRunnableNotable is the share of the main goroutine's runnable
	// time during which the world must be stopped for the verdict to
	// blame the stops rather than the goroutines that ran.
	stwRunnableNotable = 0.25
)

// maxVerdict bounds a verdict's length, in characters, before a failed
// span's error summary is put in front: clauses are dropped, detail
// first, to fit.
const maxVerdict = 200

func (b *builder) verdict(d *Diagnosis, startCut, endCut bool) string {
	mg := d.main()
	if mg == nil || mg.Time <= 0 {
		return "the snapshot holds none of the span's time"
	}
	state, dur := mg.Buckets.Dominant()
	main := b.tl.gs[xtrace.GoID(mg.ID)]
	full := []window{{b.a, b.b}}
	core := fmt.Sprintf("%d%% of %s ", percent(dur, mg.Time), fmtDur(mg.Time))
	// chain renders the cause with up to n hops of its wait chain.
	var chain func(n int) string
	stwTold := false
	switch state {
	case StateRunning:
		core += "running"
		if f, _ := b.placeIn(main, state, full); f != "" {
			core += " in " + f
		}
	case StateGCAssist:
		core += "in GC mark assist"
		if f, _ := b.placeIn(main, state, full); f != "" {
			core += ", allocating in " + f
		}
	case StateRunnable:
		core += "runnable, waiting for a P"
		if f, _ := b.placeIn(main, state, full); f != "" {
			core += " in " + f
		}
		if d.GOMAXPROCS > 0 {
			core += fmt.Sprintf(" (GOMAXPROCS=%d)", d.GOMAXPROCS)
		}
		if stw := b.stwOverlapIn(b.runnableWindows(main)); len(d.GC.STW) > 0 && float64(stw) >= stwRunnableNotable*float64(dur) {
			chain = func(level int) string { return "; " + stwPhrase(d.GC.STW, stw, min(level, stwNoWho-1)) }
			stwTold = true
		} else if len(d.RanWhileRunnable) > 0 {
			chain = func(int) string { return "; " + holdersPhrase(d.RanWhileRunnable[0]) }
		}
	default:
		core += blockedPhrase(state, b.longest(main, state), b)
		if f, _ := b.placeIn(main, state, full); f != "" {
			core += " in " + f
		}
		verb := "woken"
		if p := blockedPhrase(state, b.longest(main, state), b); strings.HasSuffix(p, "Mutex") {
			verb = "released" // the holder unlocked it
		}
		chain = func(level int) string { return b.chainPhrase(d, verb, level) }
	}
	gc := b.gcPhrase(d, mg, stwTold, 0)
	// partial is the note of a cut span, in less and less detail: the
	// length of the tail the window holds is in the core too, and the
	// root cause weighs more than the note's wording.
	partial := []string{""}
	switch {
	case startCut:
		partial = []string{fmt.Sprintf(" (partial: began before the window, which holds its last %s)", fmtDur(d.Duration)),
			" (partial: began before the window)"}
	case endCut:
		partial = []string{" (partial: not ended when the snapshot was taken)", " (partial: not ended)"}
	}
	ch := func(n int) string {
		if chain == nil {
			return ""
		}
		return chain(n)
	}
	// The most that fits: the chain in less and less detail, each with the
	// partial note in less detail, then the GC clause in less detail, then
	// without it, then without the partial note.
	var cands []string
	for level := range chainLevels {
		for _, p := range partial {
			cands = append(cands, core+ch(level)+gc+p)
		}
	}
	short := ch(chainLevels - 1)
	note := partial[len(partial)-1]
	for level := 1; level < gcLevels; level++ {
		cands = append(cands, core+short+b.gcPhrase(d, mg, stwTold, level)+note)
	}
	cands = append(cands, core+short+note, core+short, core+note)
	for _, v := range cands {
		if utf8.RuneCountInString(v) <= maxVerdict {
			return v
		}
	}
	return clip(core, maxVerdict)
}

// stwNotable reports whether the stops of the world during the interval
// deserve the verdict's mention: a notable share of it, or, for stops the
// program asked for (profiles, ReadMemStats, GOMAXPROCS), which are rare
// and avoidable, a smaller one.
func (b *builder) stwNotable(d *Diagnosis) bool {
	total := float64(d.Duration)
	if float64(d.GC.STWOverlap) >= gcSTWNotable*total {
		return true
	}
	return b.stwAsked(d)
}

// stwAsked reports whether the stops of the world the program asked for
// (profiles, ReadMemStats, GOMAXPROCS), not the collector, took a notable
// share of the interval.
func (b *builder) stwAsked(d *Diagnosis) bool {
	var asked time.Duration
	for _, c := range d.GC.STW {
		if !isGCReason(c.Reason) {
			asked += c.Overlap
		}
	}
	return float64(asked) >= stwAskedNotable*float64(d.Duration)
}

// clip cuts s to at most n characters, marking the cut with "…".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// chainLevels is how many levels of detail chainPhrase has.
const chainLevels = 8

// gcLevels is how many levels of detail gcPhrase has.
const gcLevels = 6

// chainPhrase tells what ended the main goroutine's waits: a timer, or its
// wait chain, at a level of detail from 0 (every hop's function and place)
// to chainLevels-1. Each level leaves out more: 1 the middle hops' places,
// 2 their functions, 3 folds them into a count, 4 names the last hop by
// where it spent the time alone, when that is the program's code, not
// also by where it ended the wait (the place is the root cause; the
// function where it woke the span is often the span's own), or else
// leaves out the place, 5 the first hop's function when there are more; 6
// names the last hop as the one that woke the span through the others, 7
// leaves out what it was doing, but for who kept it off the CPU.
func (b *builder) chainPhrase(d *Diagnosis, verb string, level int) string {
	if b.timeout != "" {
		return fmt.Sprintf("; %s after %s", timeoutPhrase(b.timeout), fmtDur(b.timeoutWait))
	}
	hops := d.Chain
	if len(hops) == 0 {
		return ""
	}
	in := func(f string) string {
		if f == "" {
			return ""
		}
		return " in " + f
	}
	last := len(hops) - 1
	root := hops[last]
	if level >= 4 && root.placeInProgram && root.Place != root.Func {
		root.Func = ""
	}
	rootName := root.Func
	if rootName == "" {
		rootName = root.Place
	}
	var sb strings.Builder
	if level >= 6 {
		fmt.Fprintf(&sb, "; %s", verb)
		if last > 0 {
			ids := make([]string, last)
			for i, h := range hops[:last] {
				ids[i] = strconv.FormatInt(h.Goroutine, 10)
			}
			noun := "goroutines "
			if last == 1 {
				noun = "goroutine "
			}
			sb.WriteString(" through " + noun + strings.Join(ids, ", "))
		}
		fmt.Fprintf(&sb, " by goroutine %d%s", root.Goroutine, in(rootName))
		switch {
		case level >= 7:
		case root.Timeout != "":
			fmt.Fprintf(&sb, ", waiting until %s", timeoutPhrase(root.Timeout))
		case root.Duration > 0:
			fmt.Fprintf(&sb, ", mostly %s (%s%s)", shortPhrase[root.State], fmtDur(root.Duration), rootHolders(root))
		}
		if level >= 7 && len(root.RanWhileRunnable) > 0 {
			sb.WriteString(", starved by " + goroutinesIn(root.RanWhileRunnable[0]))
		}
		return sb.String()
	}
	hops = append(hops[:last:last], root)
	first := hops[0].Func
	if level >= 5 && last > 0 {
		first = ""
	}
	fmt.Fprintf(&sb, "; %s by goroutine %d%s", verb, hops[0].Goroutine, in(first))
	for i := 0; i < len(hops); i++ {
		h := hops[i]
		place := ""
		if h.Place != h.Func && (i == last && (level < 4 || h.Func == "") || i < last && level < 1) {
			place = in(h.Place)
		}
		if i < last {
			if level >= 3 && last-i > 1 {
				n := last - i - 1
				fmt.Fprintf(&sb, ", which waited%s (through %d more) for goroutine %d%s", place, n, root.Goroutine, in(root.Func))
				i = last - 1
				continue
			}
			next := hops[i+1]
			f := next.Func
			if level >= 2 && i+1 < last {
				f = ""
			}
			fmt.Fprintf(&sb, ", which waited%s for goroutine %d%s", place, next.Goroutine, in(f))
			continue
		}
		switch {
		case h.Timeout != "":
			fmt.Fprintf(&sb, ", which waited%s until %s", place, timeoutPhrase(h.Timeout))
		case h.Duration > 0:
			fmt.Fprintf(&sb, ", which was mostly %s%s (%s%s)", shortPhrase[h.State], place, fmtDur(h.Duration), rootHolders(h))
		}
	}
	return sb.String()
}

// rootHolders tells who held the Ps while a chain's last goroutine waited
// for one: "; 16 goroutines in main.spin ran 730 ms of it".
func rootHolders(h Hop) string {
	if len(h.RanWhileRunnable) == 0 {
		return ""
	}
	return "; " + holdersPhrase(h.RanWhileRunnable[0])
}

// holdersPhrase tells who ran while the main goroutine waited for a P:
// "16 goroutines in main.spin ran 730 ms of it".
func holdersPhrase(h FuncTime) string {
	return fmt.Sprintf("%s ran %s of it", goroutinesIn(h), fmtDur(h.Time))
}

// goroutinesIn names a group of goroutines: "16 goroutines in main.spin".
func goroutinesIn(h FuncTime) string {
	who := fmt.Sprintf("%d goroutines", h.Goroutines)
	if h.Goroutines == 1 {
		who = "1 goroutine"
	}
	return who + " in " + h.Func
}

// stwNoWho is the stwPhrase level that leaves out who stopped the world.
const stwNoWho = 6

// stwPhrase tells that the world was stopped for d, and why: the reason
// with the most stopped time, and who stopped it. From level 3 on it is
// shorter, from level 5 on it leaves out the goroutine's ID, from stwNoWho
// on who it was.
func stwPhrase(causes []STWCause, d time.Duration, level int) string {
	c := causes[0]
	var total time.Duration
	for _, x := range causes {
		total += x.Overlap
	}
	why := c.Reason
	if float64(c.Overlap) < 0.9*float64(total) && level < 3 {
		why = "mostly " + why
	}
	switch {
	case level >= stwNoWho:
	case c.Goroutine != 0 && level < 5:
		why += fmt.Sprintf(", by goroutine %d", c.Goroutine)
		if c.Func != "" {
			why += " in " + c.Func
		}
	case c.Func != "":
		why += ", by " + c.Func
	}
	return fmt.Sprintf("the world was stopped for %s (%s)", fmtDur(d), why)
}

// shortPhrase describes what another goroutine was mostly doing.
var shortPhrase = [numStates]string{
	StateRunning:        "running",
	StateRunnable:       "waiting for a P",
	StateSyscall:        "in system calls",
	StateBlockedChan:    "blocked on channels",
	StateBlockedSelect:  "blocked in select",
	StateBlockedMutex:   "blocked on sync primitives",
	StateBlockedCond:    "waiting on sync.Cond",
	StateBlockedSleep:   "sleeping",
	StateBlockedNetwork: "waiting on the network",
	StateGCAssist:       "in GC mark assist",
	StateBlockedOther:   "blocked",
}

func blockedPhrase(state State, s *seg, b *builder) string {
	switch state {
	case StateSyscall:
		return "in system calls"
	case StateBlockedChan:
		if s != nil && s.reason == "chan send" {
			return "blocked on a channel send"
		}
		return "blocked on a channel receive"
	case StateBlockedSelect:
		return "blocked in select"
	case StateBlockedMutex:
		if s != nil {
			p := syncPrimitive(b.stackFrames(s.stack))
			if p == anySyncPrimitive {
				// A wait older than the trace has no stack: the unlock
				// or Done that ended it names the primitive.
				p = syncPrimitive(b.stackFrames(s.wakerStack))
			}
			return "blocked on " + p
		}
		return "blocked on a sync primitive"
	case StateBlockedCond:
		return "waiting on sync.Cond"
	case StateBlockedSleep:
		return "sleeping"
	case StateBlockedNetwork:
		return "waiting on the network"
	}
	if s != nil && s.reason != "" {
		return fmt.Sprintf("blocked (%s)", s.reason)
	}
	return "blocked"
}

// longest returns g's longest segment in state during the interval.
func (b *builder) longest(g *gtrack, state State) *seg {
	var longest *seg
	var longestO time.Duration
	for i := range g.segs {
		s := &g.segs[i]
		if s.state != state {
			continue
		}
		if o := b.overlap(s.start, s.end); o > longestO {
			longest, longestO = s, o
		}
	}
	return longest
}

// gcPhrase is the verdict's GC clause: marking during a notable share of
// the interval, and stops of the world, unless stwTold. Each level up to
// gcLevels-1 leaves out more: from level 1 on it names who started the
// collections and stopped the world by their function only, without
// goroutine IDs; 2 leaves out the mark assist time, 3 who stopped the
// world, 4 the collector's own stops (GC reasons; the program's, such as
// ReadMemStats, stay), 5 who started the collections.
func (b *builder) gcPhrase(d *Diagnosis, mg *Goroutine, stwTold bool, level int) string {
	total := float64(d.Duration)
	if total <= 0 {
		return ""
	}
	var parts []string
	id, fn, forced := b.gcStarter()
	markNotable := gcMarkNotable
	if forced {
		markNotable = gcForcedNotable
	}
	if float64(d.GC.MarkOverlap) >= markNotable*total {
		p := fmt.Sprintf("GC marking during %d%% of it", percent(d.GC.MarkOverlap, d.Duration))
		var notes []string
		if a := mg.Buckets[StateGCAssist]; float64(a) >= assistNotable*total && level < 2 {
			notes = append(notes, "assist "+fmtDur(a))
		}
		who := id
		switch {
		case level >= 5:
			who = ""
		case level > 0 && fn != "":
			who = fn
		case fn != "":
			who += " in " + fn
		}
		if who != "" {
			by := "started by "
			if forced {
				by = "forced by "
			}
			notes = append(notes, by+who)
		}
		if len(notes) > 0 {
			p += " (" + strings.Join(notes, ", ") + ")"
		}
		parts = append(parts, p)
	}
	if !stwTold && len(d.GC.STW) > 0 && b.stwNotable(d) && (level < 4 || b.stwAsked(d)) {
		stwLevel := 0
		switch {
		case level >= 3:
			stwLevel = stwNoWho
		case level > 0:
			stwLevel = 5 // no goroutine IDs
		}
		parts = append(parts, stwPhrase(d.GC.STW, d.GC.STWOverlap, stwLevel))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, ", ")
}

// anySyncPrimitive is what syncPrimitive returns for a stack that names
// none.
const anySyncPrimitive = "a sync primitive"

// syncPrimitive names the sync type a goroutine blocked on, from its stack,
// or that its waker released, from the waker's.
func syncPrimitive(fs []Frame) string {
	for _, f := range fs {
		for _, t := range []string{"Mutex", "RWMutex", "WaitGroup", "Once", "Cond"} {
			if strings.HasPrefix(f.Func, "sync.(*"+t+").") {
				return "sync." + t
			}
		}
	}
	return anySyncPrimitive
}

// entryFunc returns the root frame's function of stk: the goroutine's entry.
func entryFunc(stk xtrace.Stack) string {
	var fn string
	for f := range stk.Frames() {
		fn = f.Func
	}
	return fn
}

func maxKey[K cmp.Ordered](m map[K]time.Duration) (K, bool) {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // ties go to the smallest key, for stable verdicts
	var best K
	var bestD time.Duration
	found := false
	for _, k := range keys {
		if d := m[k]; !found || d > bestD {
			best, bestD, found = k, d, true
		}
	}
	return best, found
}

func percent(part, whole time.Duration) int {
	if whole <= 0 {
		return 0
	}
	return int((100*float64(part))/float64(whole) + 0.5)
}

// fmtDur formats a duration for a person: "240 ms", "3.2 ms", "1.25 s".
func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f µs", float64(d)/1e3)
}
