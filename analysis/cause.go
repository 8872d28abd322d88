package analysis

import (
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
// its function alone names the cause. Two exceptions keep one problem in
// one group:
//
//   - a last hop that mostly waited for a P is not the root: the root is
//     who held the Ps meanwhile ("root: main.score running"), as for a
//     main goroutine that was mostly runnable;
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
			if f := b.busiestHolder(last); f != "" {
				root = f + " running"
			}
		}
	case state == StateRunnable:
		_, dur := mg.Buckets.Dominant()
		if stw := b.stwOverlapIn(b.runnableWindows(main)); len(d.GC.STW) > 0 && float64(stw) >= stwRunnableNotable*float64(dur) {
			root = "stop the world (" + d.GC.STW[0].Reason + ")"
		} else if f := b.busiestHolder(main); f != "" {
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

// busiestHolder names, for a cause, the goroutines that ran the most while
// g was runnable, grouped by ownFunc; "" if none ran.
func (b *builder) busiestHolder(g *gtrack) string {
	ws := b.runnableWindows(g)
	byFunc := map[string]time.Duration{}
	for id, o := range b.tl.gs {
		if id == g.id {
			continue
		}
		var ran time.Duration
		for i := range o.segs {
			if s := &o.segs[i]; s.state == StateRunning || s.state == StateGCAssist {
				ran += overlapIn(s.start, s.end, ws)
			}
		}
		if ran > 0 {
			byFunc[b.ownFunc(o)] += ran
		}
	}
	f, _ := maxKey(byFunc)
	return f
}

// ownFunc names g by its own code whatever stacks the trace holds of it:
// the function it was started in, if the program's; else the program's
// function that started it, when the trace holds its creation; else
// goroutineFunc.
func (b *builder) ownFunc(g *gtrack) string {
	prog := b.cfg.program
	if f := entryFunc(g.entry); f != "" && prog.class(f, "") == classProgram {
		return shortFunc(f)
	}
	if g.createStack != xtrace.NoStack {
		if fr, c := prog.placeFrame(b.stackFrames(g.createStack)); c == classProgram {
			return shortFunc(fr.Func)
		}
	}
	return b.goroutineFunc(g)
}
