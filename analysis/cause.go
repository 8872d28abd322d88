package analysis

import (
	"encoding/hex"
	"strings"
	"time"
	"unicode"

	xtrace "golang.org/x/exp/trace"
)

// The cause is the verdict without its numbers: the part of it that two
// diagnoses of the same problem share, whichever replica, goroutines and
// durations they saw. Its parts, joined with "; ":
//
//   - for a failed span, "error: " and its error summary, each run of
//     digits replaced by "#", so that addresses, ports and counts do not
//     split a group;
//   - the main goroutine's dominant state (State.String) and, after " in ",
//     the place the verdict names for it: a function, never a file, a line
//     or an offset;
//   - "root: " and the root cause, where the diagnosis found one: the
//     function of the wait chain's last hop ("root: main.fsync"), with the
//     timer that ended its own wait if one did ("root: main.poll until
//     timer"), or the timer that ended the main goroutine's ("root: context
//     deadline"); the place whose goroutines held the Ps ("root: main.spin
//     running"); or the reason the world was stopped ("root: stop the world
//     (goroutine profile)").
//
// Goroutine IDs, durations and shares never enter it, nor what the last
// hop mostly did: under load, one goroutine reading a connection is seen
// on the network, runnable or blocked from one snapshot to the next, and
// its function alone names the cause. These rules keep one problem in
// one group:
//
//   - a last hop that mostly waited for a P is not the root: the root is
//     who held the Ps meanwhile ("root: main.score running"), as for a
//     main goroutine that was mostly runnable; nor is one that waited on
//     the network, in a system call or on anything else no goroutine
//     ended, while a goroutine of this process that ran another span of
//     the trace (the downstream's server span, when both services share
//     the process) was runnable for at least half as long: the root is
//     then who held the Ps while that goroutine waited;
//   - goroutines holding the Ps are named by their own code when it is
//     known whatever they did: the function they were started in, if it is
//     the program's, else the program's function that started them (a go
//     statement or sync.WaitGroup.Go), and only else by where they ran; a
//     goroutine that was preempted shows its stack and one that ran to its
//     end shows none, and the same fan-out must not name two causes;
//   - a failed span shorter than causeMinTime is grouped by its error
//     alone: what it did in its last microseconds varies with timing, and
//     a latency trigger would not have caught it (spanprocessor's adaptive
//     floor is the same 10 ms).

// causeMinTime is how long a failed span must last for what it did to
// enter its cause beside its error.
const causeMinTime = 10 * time.Millisecond

// cause returns d's grouping key; see Diagnosis.Cause.
func (b *builder) cause(d *Diagnosis) string {
	var parts []string
	if d.Span.Error != "" {
		parts = append(parts, "error: "+maskDigits(d.Span.Error))
		if !d.Span.Start.IsZero() && d.Span.End.Sub(d.Span.Start) < causeMinTime {
			return parts[0]
		}
	}
	mg := d.main()
	if mg == nil || mg.Time <= 0 {
		return strings.Join(parts, "; ")
	}
	main := b.tl.gs[xtrace.GoID(mg.ID)]
	if main == nil {
		return strings.Join(parts, "; ")
	}
	state, _ := mg.Buckets.Dominant()
	core := state.String()
	if f, _ := b.placeIn(main, state, []window{{b.a, b.b}}); f != "" {
		core += " in " + f
	}
	parts = append(parts, core)
	root := ""
	switch {
	case b.timeout != "":
		root = string(b.timeout)
	case len(d.Chain) > 0:
		h := d.Chain[len(d.Chain)-1]
		root = h.Func
		if h.Timeout != "" {
			root += " until " + string(h.Timeout)
		} else if last := b.tl.gs[xtrace.GoID(h.Goroutine)]; h.State == StateRunnable && last != nil {
			if f := b.busiestHolder(last.id, b.runnableWindows(last)); f != "" {
				root = f + " running"
			}
		} else if h.State == StateBlockedNetwork || h.State == StateSyscall || h.State == StateBlockedOther {
			if f := b.starvedPeer(d, h); f != "" {
				root = f + " running"
			}
		}
	case state == StateRunnable:
		_, dur := mg.Buckets.Dominant()
		if stw := b.stwOverlapIn(b.runnableWindows(main)); len(d.GC.STW) > 0 && float64(stw) >= stwRunnableNotable*float64(dur) {
			root = "stop the world (" + d.GC.STW[0].Reason + ")"
		} else if f := b.busiestHolder(main.id, b.runnableWindows(main)); f != "" {
			root = f + " running"
		}
	}
	if root = strings.TrimSpace(root); root != "" {
		parts = append(parts, "root: "+root)
	}
	return strings.Join(parts, "; ")
}

// maskDigits replaces each run of digits in s with "#".
func maskDigits(s string) string {
	var sb strings.Builder
	digits := false
	for _, r := range s {
		if unicode.IsDigit(r) {
			if !digits {
				sb.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		sb.WriteRune(r)
	}
	return sb.String()
}

// busiestHolder names, for a cause, the goroutines other than skip that
// ran the most within ws, grouped by ownFunc; "" if none the trace names
// ran.
func (b *builder) busiestHolder(skip xtrace.GoID, ws []window) string {
	if len(ws) == 0 {
		return ""
	}
	byFunc := map[string]time.Duration{}
	for id, o := range b.tl.gs {
		if id == skip {
			continue
		}
		var ran time.Duration
		for i := range o.segs {
			if s := &o.segs[i]; s.onCPU() {
				ran += overlapIn(s.start, s.end, ws)
			}
		}
		if ran == 0 {
			continue
		}
		// A goroutine the trace does not name ("goroutine 42") stays out:
		// an ID never enters a cause.
		if f := b.ownFunc(o); !b.unnamed(o, f) {
			byFunc[f] += ran
		}
	}
	f, _ := maxKey(byFunc)
	return f
}

// unnamed reports whether name, which names g, is only its ID, and
// notes for Analyze (builder.unnamedHolder) when the generation before the
// parsed ones may name it: the one g was created in, if not these.
func (b *builder) unnamed(g *gtrack, name string) bool {
	if !strings.HasPrefix(name, "goroutine ") {
		return false
	}
	if !g.created {
		b.unnamedHolder = true
	}
	return true
}

// ownFunc names g by its own code, whatever stacks the trace holds of it:
// the program's function that started it, when the trace holds its
// creation; else the outermost of the program's functions in its stacks
// (its entry into the program: the function a sync.WaitGroup.Go or a go
// statement runs); else, for a goroutine of which the trace holds neither
// (it ran to its end unseen), the name most goroutines with the same entry
// function have; else its entry function (runtime.gcBgMarkWorker, for the
// GC's workers); else goroutineFunc. A closure is named by the function
// it is in: the work of main.score's go statement is main.score's.
func (b *builder) ownFunc(g *gtrack) string {
	if f, ok := b.ownFuncs[g.id]; ok {
		return f
	}
	f := b.knownOwnFunc(g)
	if f == "" {
		f = b.kinFunc(entryFunc(g.entry))
	}
	if f == "" {
		// Outside the program's code, the function a goroutine was
		// started in names it better than where it stopped:
		// runtime.gcBgMarkWorker rather than runtime.gopark.
		f = shortFunc(entryFunc(g.entry))
	}
	if f == "" {
		f = b.goroutineFunc(g)
	}
	if b.ownFuncs == nil {
		b.ownFuncs = map[xtrace.GoID]string{}
	}
	b.ownFuncs[g.id] = f
	return f
}

// kinFunc returns the name (knownOwnFunc) that most goroutines started
// in entry have, "" if none has one.
func (b *builder) kinFunc(entry string) string {
	if entry == "" {
		return ""
	}
	if b.kinFuncs == nil {
		b.kinFuncs = map[string]string{}
		byEntry := map[string]map[string]time.Duration{}
		for _, o := range b.tl.gs {
			if k := b.knownOwnFunc(o); k != "" {
				e := entryFunc(o.entry)
				if byEntry[e] == nil {
					byEntry[e] = map[string]time.Duration{}
				}
				byEntry[e][k]++
			}
		}
		for e, names := range byEntry {
			b.kinFuncs[e], _ = maxKey(names)
		}
	}
	return b.kinFuncs[entry]
}

// knownOwnFunc is ownFunc from g's own creation and stacks, "" when they
// do not name it.
func (b *builder) knownOwnFunc(g *gtrack) string {
	if f, ok := b.knownFuncs[g.id]; ok {
		return f
	}
	prog := b.cfg.program
	f := ""
	if g.createStack != xtrace.NoStack {
		if fr, c := prog.placeFrame(b.stackFrames(g.createStack)); c == classProgram {
			f = fr.Func
		}
	}
	if f == "" {
		for _, stk := range append([]xtrace.Stack{g.entry}, segStacks(g)...) {
			fs := b.stackFrames(stk)
			for i := len(fs) - 1; i >= 0; i-- {
				if prog.class(fs[i].Func, fs[i].File) == classProgram {
					f = fs[i].Func
					break
				}
			}
			if f != "" {
				break
			}
		}
	}
	if f != "" {
		f = enclosingFunc(shortFunc(f))
	}
	if b.knownFuncs == nil {
		b.knownFuncs = map[xtrace.GoID]string{}
	}
	b.knownFuncs[g.id] = f
	return f
}

// segStacks returns the stacks of g's segments, each once.
func segStacks(g *gtrack) []xtrace.Stack {
	var out []xtrace.Stack
	seen := map[xtrace.Stack]bool{xtrace.NoStack: true}
	for i := range g.segs {
		if s := g.segs[i].stack; !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// enclosingFunc strips a closure's suffixes (".func1", ".func2.1") from a
// function's name: main.(*orders).score.func1 is main.(*orders).score.
func enclosingFunc(fn string) string {
	for {
		i := strings.LastIndexByte(fn, '.')
		if i < 0 {
			return fn
		}
		last := strings.TrimPrefix(fn[i+1:], "func")
		if last == "" || strings.Trim(last, "0123456789") != "" {
			return fn
		}
		fn = fn[:i]
	}
}

// starvedPeer returns, for a chain that ends waiting on the network or in
// a system call (h), who held the Ps while the request's other side in this
// process waited for one: a goroutine that ran another span of the trace
// (a server span of the downstream call, when both services share the
// process) and was runnable for at least half as long as h waited. The
// network was then slow because this process was: the root is who held
// the Ps. It returns "" when there is no such goroutine.
func (b *builder) starvedPeer(d *Diagnosis, h Hop) string {
	if !d.Span.TraceID.IsValid() || len(b.tl.peers) == 0 {
		return ""
	}
	tr := hex.EncodeToString(d.Span.TraceID[:])
	skip := map[xtrace.GoID]bool{xtrace.NoGoroutine: true}
	if mg := d.main(); mg != nil {
		skip[xtrace.GoID(mg.ID)] = true
	}
	for _, c := range d.Chain {
		skip[xtrace.GoID(c.Goroutine)] = true
	}
	var (
		best   *gtrack
		bestWs []window
		bestD  time.Duration
	)
	for _, m := range b.tl.peers {
		g := b.tl.gs[m.g]
		if m.trace != tr || skip[m.g] || g == nil {
			continue
		}
		skip[m.g] = true
		ws := b.runnableWindows(g)
		var d time.Duration
		for _, w := range ws {
			d += w.end.Sub(w.start)
		}
		if d > bestD {
			best, bestWs, bestD = g, ws, d
		}
	}
	if best == nil || 2*bestD < h.Duration {
		return ""
	}
	return b.busiestHolder(best.id, bestWs)
}
