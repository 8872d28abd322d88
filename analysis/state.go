package analysis

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	xtrace "golang.org/x/exp/trace"
)

// State is what a goroutine was doing at a point in time. Every instant of a
// goroutine's life falls in exactly one State, so the time spent in each adds
// up to the goroutine's time.
//
// The states follow the goroutine summaries of `go tool trace`
// (internal/trace/summary.go in the Go tree: execution, scheduler wait,
// syscall, and block time by reason), with the block reasons the runtime
// records (runtime/traceruntime.go, traceBlockReasonStrings) grouped the way
// cmd/trace's pprof.go groups them, and sync primitives told apart.
type State uint8

const (
	// StateRunning: on a P, executing Go code, except GC mark assists.
	StateRunning State = iota
	// StateRunnable: ready to run, waiting for a P. This covers the
	// scheduler latency after being woken, preemption ("preempted",
	// "runtime.Gosched" stops), and the wait for a P after a syscall.
	StateRunnable
	// StateSyscall: in a system call, whether or not it kept its P.
	StateSyscall
	// StateBlockedChan: blocked on a channel send or receive (block
	// reasons "chan send" and "chan receive").
	StateBlockedChan
	// StateBlockedSelect: blocked in a select statement (reason "select").
	StateBlockedSelect
	// StateBlockedMutex: blocked on a primitive built on the runtime's
	// semaphores (reason "sync"): sync.Mutex, sync.RWMutex, sync.WaitGroup,
	// and the like. The verdict and each episode's stack tell which.
	StateBlockedMutex
	// StateBlockedCond: waiting in sync.(*Cond).Wait.
	StateBlockedCond
	// StateBlockedSleep: in time.Sleep (reason "sleep").
	StateBlockedSleep
	// StateBlockedNetwork: waiting on the network poller (reason
	// "network"): sockets, pipes and other pollable file descriptors.
	StateBlockedNetwork
	// StateGCAssist: paying for its allocations with GC mark work, running
	// inside a "GC mark assist" range or parked waiting for assist credit
	// (reason "GC mark assist wait for work").
	StateGCAssist
	// StateBlockedOther: blocked for any other reason: "wait until GC ends",
	// "preempted" parks for stack scans, "system goroutine wait",
	// "unspecified", and waits whose reason the trace does not say.
	StateBlockedOther

	numStates = iota
)

var stateNames = [numStates]string{
	StateRunning:        "running",
	StateRunnable:       "runnable",
	StateSyscall:        "syscall",
	StateBlockedChan:    "blocked.chan",
	StateBlockedSelect:  "blocked.select",
	StateBlockedMutex:   "blocked.mutex",
	StateBlockedCond:    "blocked.cond",
	StateBlockedSleep:   "blocked.sleep",
	StateBlockedNetwork: "blocked.network",
	StateGCAssist:       "gc_assist",
	StateBlockedOther:   "blocked.other",
}

// String returns the state's name, as used in attribute keys after
// DiagnosisBucketKeyPrefix and in JSON: "running", "runnable",
// "syscall", "blocked.chan", "blocked.select", "blocked.mutex",
// "blocked.cond", "blocked.sleep", "blocked.network", "gc_assist",
// "blocked.other".
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// MarshalText implements [encoding.TextMarshaler] with [State.String].
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Blocked reports whether the state is a wait that a blocking episode
// describes: a system call, any blocked state, or waiting for GC assist
// credit.
func (s State) Blocked() bool { return s != StateRunning && s != StateRunnable }

// Buckets holds a goroutine's time split by State; index it with the State
// constants. The JSON encoding is an object from state names to durations
// ("12.5ms"), with the zero buckets left out.
type Buckets [numStates]time.Duration

// Total returns the sum of all buckets.
func (b *Buckets) Total() time.Duration {
	var t time.Duration
	for _, d := range b {
		t += d
	}
	return t
}

// Dominant returns the state with the most time, and that time. Ties go to
// the earlier State constant; empty buckets return StateRunning and 0.
func (b *Buckets) Dominant() (State, time.Duration) {
	best := StateRunning
	for s, d := range b {
		if d > b[best] {
			best = State(s)
		}
	}
	return best, b[best]
}

// MarshalJSON implements [json.Marshaler].
func (b Buckets) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	for s, d := range b {
		if d == 0 {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		k, _ := json.Marshal(State(s).String())
		buf.Write(k)
		buf.WriteByte(':')
		v, _ := jsonDuration(d).MarshalJSON()
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// blockState maps a block reason recorded by the runtime (the Reason of a
// Running->Waiting transition) to a State. The strings are the runtime's
// traceBlockReasonStrings (runtime/traceruntime.go, Go 1.22 to 1.26).
func blockState(reason string) State {
	switch reason {
	case "chan receive", "chan send":
		return StateBlockedChan
	case "select":
		return StateBlockedSelect
	case "sync":
		return StateBlockedMutex
	case "sync.(*Cond).Wait":
		return StateBlockedCond
	case "sleep":
		return StateBlockedSleep
	case "network":
		return StateBlockedNetwork
	case "GC mark assist wait for work":
		return StateGCAssist
	}
	return StateBlockedOther
}

// stackBlockState infers why a goroutine waits from its stack, for the
// waits whose reason the trace does not record: a goroutine first seen
// already waiting (its status event carries a stack at most). It returns
// false when the stack does not tell.
func stackBlockState(stk xtrace.Stack) (State, bool) {
	for f := range stk.Frames() {
		switch f.Func {
		case "runtime.chanrecv", "runtime.chanrecv1", "runtime.chanrecv2",
			"runtime.chansend", "runtime.chansend1":
			return StateBlockedChan, true
		case "runtime.selectgo", "runtime.block":
			return StateBlockedSelect, true
		case "sync.runtime_notifyListWait", "sync.(*Cond).Wait":
			return StateBlockedCond, true
		case "time.Sleep":
			return StateBlockedSleep, true
		case "internal/poll.runtime_pollWait", "runtime.netpollblock":
			return StateBlockedNetwork, true
		case "runtime.gcParkAssist":
			return StateGCAssist, true
		}
		if strings.HasPrefix(f.Func, "sync.runtime_Semacquire") ||
			strings.HasPrefix(f.Func, "internal/sync.runtime_Semacquire") {
			return StateBlockedMutex, true
		}
	}
	return StateBlockedOther, false
}

// wakeBlockState infers why a goroutine waited from the stack of the
// goroutine that woke it, for the waits whose reason and stack the trace
// does not record: a goroutine already waiting when the parsed generations
// begin, and first seen as it is woken. The sync primitives tell (the
// trace's stacks stop above the runtime's semaphores): an Unlock or a
// WaitGroup's Done wakes a goroutine blocked on the semaphores, a Signal
// one in sync.(*Cond).Wait. A channel operation does not: its waiter may
// have been in a receive, a send or a select. It returns false when the
// stack does not tell.
func wakeBlockState(stk xtrace.Stack) (State, bool) {
	for f := range stk.Frames() {
		fn, ok := strings.CutPrefix(f.Func, "sync.(*")
		if !ok {
			fn, ok = strings.CutPrefix(f.Func, "internal/sync.(*")
		}
		if !ok {
			continue
		}
		switch fn {
		case "Cond).Signal", "Cond).Broadcast":
			return StateBlockedCond, true
		case "Mutex).Unlock", "Mutex).unlockSlow", "RWMutex).Unlock", "RWMutex).RUnlock", "RWMutex).rUnlockSlow",
			"WaitGroup).Add", "WaitGroup).Done":
			return StateBlockedMutex, true
		}
	}
	return StateBlockedOther, false
}
