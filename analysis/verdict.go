package analysis

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

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
	gcSTWNotable  = 0.05
	assistNotable = 0.05
)

func (b *builder) verdict(d *Diagnosis, startCut, endCut bool) string {
	mg := d.main()
	if mg == nil || mg.Time <= 0 {
		return "the snapshot holds none of the span's time"
	}
	state, dur := mg.Buckets.Dominant()
	main := b.tl.gs[xtrace.GoID(mg.ID)]
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d%% of %s ", percent(dur, mg.Time), fmtDur(mg.Time))
	switch state {
	case StateRunning:
		sb.WriteString("running")
		if f := b.runningFunc(main); f != "" {
			fmt.Fprintf(&sb, " in %s", f)
		}
	case StateGCAssist:
		sb.WriteString("in GC mark assist")
		if f, _ := b.topFunc(main, state); f != "" {
			fmt.Fprintf(&sb, ", allocating in %s", f)
		}
	case StateRunnable:
		sb.WriteString("runnable, waiting for a P")
		if d.GOMAXPROCS > 0 {
			fmt.Fprintf(&sb, " (GOMAXPROCS=%d)", d.GOMAXPROCS)
		}
		if id, ran := b.busiest(main.id); id != xtrace.NoGoroutine {
			fmt.Fprintf(&sb, "; the busiest other goroutine, %d", id)
			if f := entryFunc(b.tl.gs[id].entry); f != "" {
				fmt.Fprintf(&sb, " in %s", shortFunc(f))
			}
			fmt.Fprintf(&sb, ", ran %s", fmtDur(ran))
		}
	default:
		f, seg := b.topFunc(main, state)
		sb.WriteString(blockedPhrase(state, seg, b))
		if f != "" {
			fmt.Fprintf(&sb, " in %s", f)
		}
		b.wakerClause(&sb, d, main, state)
	}
	b.gcClause(&sb, d, mg)
	switch {
	case startCut:
		fmt.Fprintf(&sb, " (partial: the span began before the snapshot's window, which holds its last %s)", fmtDur(d.Duration))
	case endCut:
		sb.WriteString(" (partial: the span had not ended when the snapshot was taken)")
	}
	return sb.String()
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
			return "blocked on " + syncPrimitive(b.stackFrames(s.stack))
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

// topFunc returns the user function where g spent the most time in state
// during the interval, and its longest segment there.
func (b *builder) topFunc(g *gtrack, state State) (string, *seg) {
	byFunc := map[string]time.Duration{}
	var longest *seg
	var longestO time.Duration
	for i := range g.segs {
		s := &g.segs[i]
		if s.state != state {
			continue
		}
		o := b.overlap(s.start, s.end)
		if o == 0 {
			continue
		}
		if f := b.userFunc(s.stack); f != "" {
			byFunc[f] += o
		}
		if o > longestO {
			longest, longestO = s, o
		}
	}
	f, _ := maxKey(byFunc)
	return f, longest
}

// runningFunc names where g ran: its CPU samples when the trace has them
// (CPU profiling was on), else the stacks at which it stopped running.
func (b *builder) runningFunc(g *gtrack) string {
	byFunc := map[string]time.Duration{}
	for _, s := range b.tl.samples {
		if s.g == g.id && s.t >= b.a && s.t <= b.b {
			if f := b.userFunc(s.stack); f != "" {
				byFunc[f]++
			}
		}
	}
	if len(byFunc) == 0 {
		for i := range g.segs {
			s := &g.segs[i]
			if f := b.userFunc(s.stack); s.state == StateRunning && f != "" {
				byFunc[f] += b.overlap(s.start, s.end)
			}
		}
	}
	f, _ := maxKey(byFunc)
	return f
}

// busiest returns the goroutine other than except that ran longest during
// the interval, and for how long.
func (b *builder) busiest(except xtrace.GoID) (xtrace.GoID, time.Duration) {
	best, bestD := xtrace.NoGoroutine, time.Duration(0)
	for id, g := range b.tl.gs {
		if id == except {
			continue
		}
		var ran time.Duration
		for i := range g.segs {
			if s := &g.segs[i]; s.state == StateRunning || s.state == StateGCAssist {
				ran += b.overlap(s.start, s.end)
			}
		}
		if ran > bestD || (ran == bestD && ran > 0 && id < best) {
			best, bestD = id, ran
		}
	}
	return best, bestD
}

// wakerClause names the goroutine that ended most of g's waits in state.
func (b *builder) wakerClause(sb *strings.Builder, d *Diagnosis, g *gtrack, state State) {
	switch state {
	case StateBlockedSleep, StateBlockedNetwork, StateSyscall:
		return // timers, the poller and the kernel end these
	}
	byWaker := map[xtrace.GoID]time.Duration{}
	stacks := map[xtrace.GoID]map[string]time.Duration{}
	for i := range g.segs {
		s := &g.segs[i]
		if s.state != state || s.waker == xtrace.NoGoroutine {
			continue
		}
		o := b.overlap(s.start, s.end)
		if o == 0 {
			continue
		}
		byWaker[s.waker] += o
		if stacks[s.waker] == nil {
			stacks[s.waker] = map[string]time.Duration{}
		}
		if f := b.userFunc(s.wakerStack); f != "" {
			stacks[s.waker][f] += o
		}
	}
	w, ok := maxKey(byWaker)
	if !ok {
		return
	}
	verb := "woken"
	if state == StateBlockedMutex {
		verb = "released"
	}
	fmt.Fprintf(sb, "; %s by goroutine %d", verb, w)
	if f, _ := maxKey(stacks[w]); f != "" {
		fmt.Fprintf(sb, " in %s", f)
	}
	for _, wg := range d.Goroutines {
		if wg.ID != int64(w) || wg.Time == 0 {
			continue
		}
		ws, wd := wg.Buckets.Dominant()
		fmt.Fprintf(sb, ", which was mostly %s (%s)", shortPhrase[ws], fmtDur(wd))
	}
}

func (b *builder) gcClause(sb *strings.Builder, d *Diagnosis, mg *Goroutine) {
	total := float64(d.Duration)
	if total <= 0 {
		return
	}
	var parts []string
	if float64(d.GC.MarkOverlap) >= gcMarkNotable*total {
		p := fmt.Sprintf("GC marking during %d%% of it", percent(d.GC.MarkOverlap, d.Duration))
		if a := mg.Buckets[StateGCAssist]; float64(a) >= assistNotable*total {
			p += fmt.Sprintf(" (assist %s)", fmtDur(a))
		}
		parts = append(parts, p)
	}
	if float64(d.GC.STWOverlap) >= gcSTWNotable*total {
		parts = append(parts, fmt.Sprintf("stop-the-world overlap %s", fmtDur(d.GC.STWOverlap)))
	}
	if len(parts) > 0 {
		sb.WriteString("; ")
		sb.WriteString(strings.Join(parts, ", "))
	}
}

// userFunc names the first frame of stk in the program's own code: past the
// runtime, the standard library and everything else in a module path
// without a dot. It falls back to the first frame outside the runtime.
func (b *builder) userFunc(stk xtrace.Stack) string {
	return shortFunc(userFrame(b.stackFrames(stk)).Func)
}

func userFrame(fs []Frame) Frame {
	for _, f := range fs {
		if !isStdFunc(f.Func) {
			return f
		}
	}
	for _, f := range fs {
		if pkg := funcPackage(f.Func); pkg != "runtime" && !strings.HasPrefix(pkg, "runtime/") {
			return f
		}
	}
	if len(fs) > 0 {
		return fs[0]
	}
	return Frame{}
}

// funcPackage returns the import path of a function's package.
func funcPackage(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	if dot < 0 {
		return fn
	}
	return fn[:slash+1+dot]
}

// isStdFunc reports whether fn belongs to the standard library: its import
// path's first element has no dot, and it is not package main.
func isStdFunc(fn string) bool {
	pkg := funcPackage(fn)
	if pkg == "main" {
		return false
	}
	first, _, _ := strings.Cut(pkg, "/")
	return !strings.Contains(first, ".")
}

// shortFunc drops a function name's import path but for the package name:
// "github.com/acme/cache.(*Cache).Get" becomes "cache.(*Cache).Get".
func shortFunc(fn string) string {
	return fn[strings.LastIndexByte(fn, '/')+1:]
}

// syncPrimitive names the sync type a goroutine blocked on, from its stack.
func syncPrimitive(fs []Frame) string {
	for _, f := range fs {
		for _, t := range []string{"Mutex", "RWMutex", "WaitGroup", "Once", "Cond"} {
			if strings.HasPrefix(f.Func, "sync.(*"+t+").") {
				return "sync." + t
			}
		}
	}
	return "a sync primitive"
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
