package analysis

import (
	"strings"
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
// its function alone names the cause.

// cause returns d's grouping key; see Diagnosis.Cause.
func (b *builder) cause(d *Diagnosis) string {
	var parts []string
	if d.Span.Error != "" {
		parts = append(parts, "error: "+maskDigits(d.Span.Error))
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
		}
	case state == StateRunnable:
		_, dur := mg.Buckets.Dominant()
		if stw := b.stwOverlapIn(b.runnableWindows(main)); len(d.GC.STW) > 0 && float64(stw) >= stwRunnableNotable*float64(dur) {
			root = "stop the world (" + d.GC.STW[0].Reason + ")"
		} else if len(d.RanWhileRunnable) > 0 {
			root = d.RanWhileRunnable[0].Func + " running"
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
