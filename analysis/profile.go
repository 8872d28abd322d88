package analysis

import (
	"fmt"
	"io"
	"time"

	"github.com/google/pprof/profile"
	xtrace "golang.org/x/exp/trace"
)

// ProfileKind names a per-span profile: one of `go tool trace`'s pprof
// profiles, restricted to a span's goroutines and interval.
type ProfileKind string

const (
	// ProfileBlock: time blocked on channels, in select, on sync
	// primitives and sync.Cond (go tool trace's synchronization blocking
	// profile).
	ProfileBlock ProfileKind = "block"
	// ProfileNetwork: time waiting on the network (its network blocking
	// profile).
	ProfileNetwork ProfileKind = "net"
	// ProfileSyscall: time in system calls (its syscall profile).
	ProfileSyscall ProfileKind = "syscall"
	// ProfileSched: time runnable, waiting for a P (its scheduler latency
	// profile).
	ProfileSched ProfileKind = "sched"
)

// ProfileKinds returns the kinds WriteProfile writes, in a fixed order.
func ProfileKinds() []ProfileKind {
	return []ProfileKind{ProfileBlock, ProfileNetwork, ProfileSyscall, ProfileSched}
}

// ParseProfileKind returns the ProfileKind named s ("block", "net",
// "syscall" or "sched"), or an error wrapping ErrProfileKind.
func ParseProfileKind(s string) (ProfileKind, error) {
	for _, k := range ProfileKinds() {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w: %q (want block, net, syscall or sched)", ErrProfileKind, s)
}

// states returns the states a profile of kind k counts.
func (k ProfileKind) states() []State {
	switch k {
	case ProfileBlock:
		return []State{StateBlockedChan, StateBlockedSelect, StateBlockedMutex, StateBlockedCond}
	case ProfileNetwork:
		return []State{StateBlockedNetwork}
	case ProfileSyscall:
		return []State{StateSyscall}
	case ProfileSched:
		return []State{StateRunnable}
	}
	return nil
}

// WriteProfile writes to w the profile of kind of span in data, a Go
// execution trace, in pprof's format (gzipped profile.proto, which `go tool
// pprof` reads): the time the span's goroutines (roles main, task and
// child; not the wakers) spent in the kind's states within the span's
// interval cut to the window, by the stack where each stretch began, as
// sample types "contentions" (count) and "delay" (nanoseconds), the same
// as `go tool trace` computes for the whole trace.
//
// The span is found as by [Analyze], whose errors WriteProfile returns,
// and an error wrapping ErrProfileKind for an unknown kind. A span with no
// time of that kind gets a valid profile without samples.
func WriteProfile(w io.Writer, data []byte, span Span, kind ProfileKind, opts ...Option) error {
	states := kind.states()
	if states == nil {
		_, err := ParseProfileKind(string(kind))
		return err
	}
	b, _, err := analyze(data, span, opts)
	if err != nil {
		return err
	}
	return b.profile(states).Write(w)
}

// profile builds the profile of the span's goroutines' time in states.
func (b *builder) profile(states []State) *profile.Profile {
	in := [numStates]bool{}
	for _, s := range states {
		in[s] = true
	}
	p := &profile.Profile{
		SampleType:    []*profile.ValueType{{Type: "contentions", Unit: "count"}, {Type: "delay", Unit: "nanoseconds"}},
		PeriodType:    &profile.ValueType{Type: "contentions", Unit: "count"},
		Period:        1,
		TimeNanos:     b.tl.toWall(b.a).UnixNano(),
		DurationNanos: int64(b.b.Sub(b.a)),
	}
	samples := map[xtrace.Stack]*profile.Sample{}
	locs := map[uint64]*profile.Location{}
	funcs := map[[2]string]*profile.Function{}
	location := func(f xtrace.StackFrame) *profile.Location {
		if l, ok := locs[f.PC]; ok {
			return l
		}
		key := [2]string{f.Func, f.File}
		fn := funcs[key]
		if fn == nil {
			fn = &profile.Function{ID: uint64(len(funcs) + 1), Name: f.Func, SystemName: f.Func, Filename: f.File}
			funcs[key] = fn
			p.Function = append(p.Function, fn)
		}
		l := &profile.Location{ID: uint64(len(p.Location) + 1), Address: f.PC, Line: []profile.Line{{Function: fn, Line: int64(f.Line)}}}
		locs[f.PC] = l
		p.Location = append(p.Location, l)
		return l
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
			s := &g.segs[i]
			if !in[s.state] {
				continue
			}
			o := b.overlap(s.start, s.end)
			if o == 0 {
				continue
			}
			smp := samples[s.stack]
			if smp == nil {
				smp = &profile.Sample{Value: []int64{0, 0}}
				for f := range s.stack.Frames() {
					smp.Location = append(smp.Location, location(f))
				}
				samples[s.stack] = smp
				p.Sample = append(p.Sample, smp)
			}
			smp.Value[0]++
			smp.Value[1] += int64(o / time.Nanosecond)
		}
	}
	return p
}
