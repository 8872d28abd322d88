package analysis

import (
	"strings"

	xtrace "golang.org/x/exp/trace"
)

// Timeout says that a timer, not another goroutine's work, ended a wait.
type Timeout string

const (
	// TimeoutTimer: a timer fired: time.After, a time.Timer or
	// time.Ticker's channel, or a function of time.AfterFunc.
	TimeoutTimer Timeout = "timer"
	// TimeoutDeadline: a context's deadline expired (context.WithTimeout,
	// context.WithDeadline, or a parent's), which cancelled the context.
	TimeoutDeadline Timeout = "context deadline"
)

// A wait ends by a timer in one of three ways the trace shows. The runtime
// runs due timers from the scheduler, outside any goroutine, or from
// whichever goroutine its P runs; either way the channel send of
// time.After, a Timer or a Ticker has no goroutine behind it, or one whose
// stack is in the runtime's timer code. A time.AfterFunc function runs on
// a goroutine the timer starts (time.goFunc), which is how a context's
// deadline cancels it (context.WithDeadlineCause's timer function).

// createdByTimer reports whether a goroutine created at stk was started by
// a timer: the goroutine of a time.AfterFunc function.
func createdByTimer(stk xtrace.Stack) bool {
	for f := range stk.Frames() {
		if f.Func == "time.goFunc" {
			return true
		}
	}
	return false
}

// isTimerFrame reports whether fn is the runtime's or package time's code
// that fires a timer.
func isTimerFrame(fn string) bool {
	switch fn {
	case "time.sendTime", "time.goFunc", "runtime.runOneTimer", "runtime.runtimer":
		return true
	}
	return strings.HasPrefix(fn, "runtime.(*timer).") || strings.HasPrefix(fn, "runtime.(*timers).")
}

// isDeadlineFrame reports whether fn is the function that a context's
// deadline timer runs to cancel it.
func isDeadlineFrame(fn string) bool {
	return strings.HasPrefix(fn, "context.WithDeadlineCause.func") || strings.HasPrefix(fn, "context.WithDeadline.func")
}

// timeoutOf returns the timer that ended the wait s, or "" if a goroutine
// ended it for another reason, or it did not end.
func (b *builder) timeoutOf(s *seg) Timeout {
	if !s.woken {
		return ""
	}
	if s.waker == xtrace.NoGoroutine {
		// Only timers make a channel ready without a goroutine.
		if s.state == StateBlockedChan || s.state == StateBlockedSelect {
			return TimeoutTimer
		}
		return ""
	}
	timer := false
	for _, f := range b.stackFrames(s.wakerStack) {
		if isDeadlineFrame(f.Func) {
			return TimeoutDeadline
		}
		if isTimerFrame(f.Func) {
			timer = true
		}
	}
	if w := b.tl.gs[s.waker]; timer || (w != nil && w.byTimer) {
		return TimeoutTimer
	}
	return ""
}

// timeoutPhrase describes what a timeout did to a wait.
func timeoutPhrase(t Timeout) string {
	if t == TimeoutDeadline {
		return "the context deadline expired"
	}
	return "a timer fired"
}
