package analysis

import (
	"testing"

	"github.com/stretchr/testify/assert"
	xtrace "golang.org/x/exp/trace"
)

// TestHoldersPoolBesideSpan pins the count of who held the Ps: a pool's
// goroutine whose time slices all fell while the span ran on the other P
// is one of the pool all the same ("tight loops on two Ps" counted 11 of
// its 12 spinners when one of them ran 20 ms beside the span and 57 µs
// while it waited); the time is only what ran while the span waited.
func TestHoldersPoolBesideSpan(t *testing.T) {
	tl := &timeline{gs: map[xtrace.GoID]*gtrack{}}
	span := &gtrack{id: 1, segs: []seg{
		{start: 0, end: 50, state: StateRunnable, gstate: xtrace.GoRunnable},
		{start: 50, end: 100, state: StateRunning, gstate: xtrace.GoRunning},
		{start: 100, end: 150, state: StateRunnable, gstate: xtrace.GoRunnable},
	}}
	tl.gs[1] = span
	for id, ran := range map[xtrace.GoID][2]xtrace.Time{2: {0, 50}, 3: {100, 150}, 4: {50, 100}} {
		tl.gs[id] = &gtrack{id: id, segs: []seg{{start: ran[0], end: ran[1], state: StateRunning, gstate: xtrace.GoRunning}}}
	}
	// 5 runs after the span: not one of those it took turns with.
	tl.gs[5] = &gtrack{id: 5, segs: []seg{{start: 150, end: 200, state: StateRunning, gstate: xtrace.GoRunning}}}
	b := &builder{tl: tl, a: 0, b: 150, cfg: newConfig(nil),
		gfuncs: map[xtrace.GoID]string{2: "main.spin", 3: "main.spin", 4: "main.spin", 5: "main.spin"}}
	assert.Equal(t, []FuncTime{{Func: "main.spin", Goroutines: 3, Time: 100}}, b.holders(span))
}

// TestHoldersNotParkedAssists pins that a goroutine parked for GC assist
// credit holds no P: a burst of allocating goroutines, hundreds of them
// parked in gcParkAssist, "ran 2.60 s" of a 617 ms span on two Ps.
func TestHoldersNotParkedAssists(t *testing.T) {
	tl := &timeline{gs: map[xtrace.GoID]*gtrack{}}
	span := &gtrack{id: 1, segs: []seg{{start: 0, end: 100, state: StateRunnable, gstate: xtrace.GoRunnable}}}
	tl.gs[1] = span
	tl.gs[2] = &gtrack{id: 2, segs: []seg{
		{start: 0, end: 30, state: StateRunning, gstate: xtrace.GoRunning},
		{start: 30, end: 50, state: StateGCAssist, gstate: xtrace.GoRunning},
		{start: 50, end: 100, state: StateGCAssist, gstate: xtrace.GoWaiting, reason: "GC mark assist wait for work"},
	}}
	tl.gs[3] = &gtrack{id: 3, segs: []seg{{start: 0, end: 100, state: StateGCAssist, gstate: xtrace.GoWaiting}}}
	b := &builder{tl: tl, a: 0, b: 100, cfg: newConfig(nil),
		gfuncs: map[xtrace.GoID]string{2: "main.decode", 3: "main.decode"}}
	assert.Equal(t, []FuncTime{{Func: "main.decode", Goroutines: 1, Time: 50}}, b.holders(span))
}
