package analysis

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	xtrace "golang.org/x/exp/trace"
)

func TestBlockState(t *testing.T) {
	// Every block reason of runtime/traceruntime.go's
	// traceBlockReasonStrings (Go 1.26).
	tests := []struct {
		reason string
		want   State
	}{
		{"chan receive", StateBlockedChan},
		{"chan send", StateBlockedChan},
		{"select", StateBlockedSelect},
		{"sync", StateBlockedMutex},
		{"sync.(*Cond).Wait", StateBlockedCond},
		{"sleep", StateBlockedSleep},
		{"network", StateBlockedNetwork},
		{"GC mark assist wait for work", StateGCAssist},
		{"unspecified", StateBlockedOther},
		{"forever", StateBlockedOther},
		{"GC background sweeper wait", StateBlockedOther},
		{"system goroutine wait", StateBlockedOther},
		{"preempted", StateBlockedOther},
		{"wait for debug call", StateBlockedOther},
		{"wait until GC ends", StateBlockedOther},
		{"GC weak to strong wait", StateBlockedOther},
		{"synctest", StateBlockedOther},
		{"", StateBlockedOther},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			assert.Equal(t, tt.want, blockState(tt.reason))
		})
	}
}

func TestStateNames(t *testing.T) {
	want := []string{"running", "runnable", "syscall", "blocked.chan", "blocked.select", "blocked.mutex",
		"blocked.cond", "blocked.sleep", "blocked.network", "gc_assist", "blocked.other"}
	for s := range State(numStates) {
		assert.Equal(t, want[s], s.String())
		text, err := s.MarshalText()
		assert.NoError(t, err)
		assert.Equal(t, want[s], string(text))
	}
	assert.Equal(t, "unknown", State(numStates).String())
	assert.False(t, StateRunning.Blocked())
	assert.False(t, StateRunnable.Blocked())
	assert.True(t, StateSyscall.Blocked())
	assert.True(t, StateBlockedMutex.Blocked())
}

func TestBuckets(t *testing.T) {
	var b Buckets
	s, d := b.Dominant()
	assert.Equal(t, StateRunning, s)
	assert.Zero(t, d)
	b[StateRunnable] = 3 * time.Millisecond
	b[StateBlockedMutex] = 1500 * time.Microsecond
	b[StateBlockedSleep] = 3 * time.Millisecond
	s, d = b.Dominant()
	assert.Equal(t, StateRunnable, s, "ties go to the earlier state")
	assert.Equal(t, 3*time.Millisecond, d)
	assert.Equal(t, 7500*time.Microsecond, b.Total())
	j, err := json.Marshal(b)
	assert.NoError(t, err)
	assert.JSONEq(t, `{"runnable":"3ms","blocked.mutex":"1.5ms","blocked.sleep":"3ms"}`, string(j))
}

func TestJSONDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, `"0s"`},
		{999, `"999ns"`},
		{240118123 * time.Nanosecond, `"240.118ms"`},
		{-1500 * time.Nanosecond, `"-2µs"`},
		{90 * time.Second, `"1m30s"`},
	}
	for _, tt := range tests {
		got, err := jsonDuration(tt.d).MarshalJSON()
		assert.NoError(t, err)
		assert.Equal(t, tt.want, string(got))
	}
}

func TestSyncPrimitive(t *testing.T) {
	tests := map[string]string{
		"sync.(*Mutex).Lock":                              "sync.Mutex",
		"sync.(*RWMutex).RLock":                           "sync.RWMutex",
		"sync.(*WaitGroup).Wait":                          "sync.WaitGroup",
		"sync.(*Once).doSlow":                             "sync.Once",
		"golang.org/x/sync/semaphore.(*Weighted).Acquire": "a sync primitive",
	}
	for fn, want := range tests {
		assert.Equal(t, want, syncPrimitive([]Frame{{Func: "runtime.semacquire1"}, {Func: fn}}), fn)
	}
}

func TestFmtDur(t *testing.T) {
	tests := map[time.Duration]string{
		500 * time.Microsecond:  "500 µs",
		3200 * time.Microsecond: "3.2 ms",
		240 * time.Millisecond:  "240 ms",
		1250 * time.Millisecond: "1.25 s",
		42 * time.Second:        "42.0 s",
	}
	for d, want := range tests {
		assert.Equal(t, want, fmtDur(d))
	}
}

func TestMatchMarker(t *testing.T) {
	const (
		tr = "4bf92f3577b34da6a3ce929d0e0e4736"
		sp = "00f067aa0ba902b7"
	)
	tests := []struct {
		msg, traceHex string
		kind          markKind
		match         bool // names span sp of trace traceHex
		wellFormed    bool // parseMarker accepts it
	}{
		{"start " + tr + " " + sp, tr, markStart, true, true},
		{"end " + tr + " " + sp, tr, markEnd, true, true},
		{"end " + tr + " " + sp, "", markEnd, true, true},
		{"end " + tr + " " + sp, "0000000000000000000000000000000a", 0, false, true},
		{"stop " + tr + " " + sp, tr, 0, false, false},
		{"start " + tr, tr, 0, false, false},
		{"start " + tr + " " + sp[:15] + "x", tr, 0, false, false},
		{"", "", 0, false, false},
	}
	for _, tt := range tests {
		kind, gotTrace, ok := matchMarker(tt.msg, tt.traceHex, sp)
		assert.Equal(t, tt.match, ok, "match %q", tt.msg)
		if ok {
			assert.Equal(t, tt.kind, kind, tt.msg)
			assert.Equal(t, tr, gotTrace, tt.msg)
		}
		_, _, ok = parseMarker(tt.msg)
		assert.Equal(t, tt.wellFormed, ok, "parse %q", tt.msg)
	}
}

func TestTraceVersion(t *testing.T) {
	tests := []struct {
		header string
		want   int
		err    error
	}{
		{"go 1.26 trace\x00\x00\x00", 26, nil},
		{"go 1.25 trace\x00\x00\x00", 25, nil},
		{"go 1.5 trace\x00\x00\x00\x00", 5, nil},
		{"go 1.26 trace\x00\x00x", 0, ErrNotTrace},
		{"go 1.xx trace\x00\x00\x00", 0, ErrNotTrace},
		{"go 2.00 trace\x00\x00\x00", 0, ErrNotTrace},
		{"go 1.26", 0, ErrNotTrace},
	}
	for _, tt := range tests {
		v, err := traceVersion([]byte(tt.header))
		assert.ErrorIs(t, err, tt.err, "%q", tt.header)
		assert.Equal(t, tt.want, v, "%q", tt.header)
	}
}

// TestInferUnwokenWaits pins the state of a wait older than the trace that
// no goroutine ended: the connection reader of a long poll, on the network
// since before the window, was "mostly blocked" when its other waits, all
// on the network, said where it waits.
func TestInferUnwokenWaits(t *testing.T) {
	old := func() seg {
		return seg{start: 0, end: 100, state: StateBlockedOther, gstate: xtrace.GoWaiting, unknown: true, woken: true, waker: xtrace.NoGoroutine}
	}
	wait := func(st State, waker xtrace.GoID) seg {
		return seg{start: 100, end: 200, state: st, gstate: xtrace.GoWaiting, woken: true, waker: waker}
	}
	for _, tc := range []struct {
		name   string
		others []seg
		want   State
	}{
		{"its other waits on the network", []seg{wait(StateBlockedNetwork, xtrace.NoGoroutine), wait(StateBlockedNetwork, xtrace.NoGoroutine)}, StateBlockedNetwork},
		{"its other waits asleep", []seg{wait(StateBlockedSleep, xtrace.NoGoroutine)}, StateBlockedSleep},
		{"asleep and on the network", []seg{wait(StateBlockedSleep, xtrace.NoGoroutine), wait(StateBlockedNetwork, xtrace.NoGoroutine)}, StateBlockedOther},
		{"a channel no goroutine woke it from", []seg{wait(StateBlockedNetwork, xtrace.NoGoroutine), wait(StateBlockedChan, xtrace.NoGoroutine)}, StateBlockedOther},
		{"waits other goroutines ended do not tell", []seg{wait(StateBlockedMutex, 7)}, StateBlockedOther},
		{"no other wait", nil, StateBlockedOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &gtrack{id: 1, segs: append([]seg{old()}, tc.others...)}
			inferUnwokenWaits(g)
			assert.Equal(t, tc.want, g.segs[0].state)
			assert.True(t, g.segs[0].unknown, "still unknown: Analyze looks a generation further back")
		})
	}
	t.Run("woken by a goroutine", func(t *testing.T) {
		s := old()
		s.waker = 7
		g := &gtrack{id: 1, segs: []seg{s, wait(StateBlockedNetwork, xtrace.NoGoroutine)}}
		inferUnwokenWaits(g)
		assert.Equal(t, StateBlockedOther, g.segs[0].state)
	})
}
