package analysis

import (
	"testing"

	"github.com/stretchr/testify/assert"
	xtrace "golang.org/x/exp/trace"
)

// waitChain builds a timeline where goroutine 1 waits from 0 to 100 for
// goroutine 2, 2 for 3, and so on: each of next's entries is who ends the
// wait of the goroutine at its index+1, or 0 for a goroutine that runs.
func waitChain(next ...xtrace.GoID) *builder {
	tl := &timeline{gs: map[xtrace.GoID]*gtrack{}}
	for i, w := range next {
		id := xtrace.GoID(i + 1)
		g := &gtrack{id: id}
		if w == 0 {
			g.segs = []seg{{start: 0, end: 100, state: StateRunning, waker: xtrace.NoGoroutine}}
		} else {
			g.segs = []seg{{start: 0, end: 100, state: StateBlockedChan, reason: "chan receive", waker: w, wakerStack: xtrace.NoStack, woken: true}}
		}
		tl.gs[id] = g
	}
	return &builder{tl: tl, a: 0, b: 100, cfg: newConfig(nil)}
}

func hopIDs(hops []Hop) []int64 {
	var ids []int64
	for _, h := range hops {
		ids = append(ids, h.Goroutine)
	}
	return ids
}

func TestChain(t *testing.T) {
	t.Run("ends at the goroutine that ran", func(t *testing.T) {
		b := waitChain(2, 3, 0)
		hops, timeout, _ := b.chain(b.tl.gs[1], StateBlockedChan)
		assert.Empty(t, timeout)
		assert.Equal(t, []int64{2, 3}, hopIDs(hops))
		assert.Equal(t, StateRunning, hops[1].State)
	})
	t.Run("bounded depth", func(t *testing.T) {
		b := waitChain(2, 3, 4, 5, 6, 7, 8, 0)
		hops, _, _ := b.chain(b.tl.gs[1], StateBlockedChan)
		assert.Equal(t, []int64{2, 3, 4, 5}, hopIDs(hops), "at most maxChainDepth hops")
	})
	t.Run("cycle", func(t *testing.T) {
		// 1 waits for 2, 2 for 3, 3 for 2 again.
		b := waitChain(2, 3, 2)
		hops, _, _ := b.chain(b.tl.gs[1], StateBlockedChan)
		assert.Equal(t, []int64{2, 3}, hopIDs(hops), "no goroutine twice")
	})
	t.Run("a timer ends the wait", func(t *testing.T) {
		b := waitChain(0)
		b.tl.gs[1].segs = []seg{{start: 0, end: 100, state: StateBlockedSelect, waker: xtrace.NoGoroutine, woken: true}}
		hops, timeout, waited := b.chain(b.tl.gs[1], StateBlockedSelect)
		assert.Empty(t, hops)
		assert.Equal(t, TimeoutTimer, timeout)
		assert.Equal(t, xtrace.Time(100).Sub(0), waited)
	})
	t.Run("a wait still going on", func(t *testing.T) {
		b := waitChain(0)
		b.tl.gs[1].segs = []seg{{start: 0, end: 100, state: StateBlockedSelect, waker: xtrace.NoGoroutine}}
		hops, timeout, _ := b.chain(b.tl.gs[1], StateBlockedSelect)
		assert.Empty(t, hops)
		assert.Empty(t, timeout, "no wake-up, no timer")
	})
}

func TestSTWReason(t *testing.T) {
	assert.Equal(t, "GC mark termination", stwReason("stop-the-world (GC mark termination)"))
	assert.Equal(t, "goroutine profile", stwReason("stop-the-world (goroutine profile)"))
	assert.Equal(t, "unknown", stwReason("stop-the-world"))
	assert.True(t, isGCReason("GC sweep termination"))
	assert.False(t, isGCReason("GOMAXPROCS"))
}

func TestVerdictFits(t *testing.T) {
	long := "github.com/acme/a-very-long-module-name/internal/subsystem.(*SomeLongTypeName).someLongMethodName"
	b := waitChain(2, 3, 4, 5, 0)
	for i := range b.tl.gs {
		b.tl.gs[i].segs[0].stack = xtrace.NoStack
	}
	hops, _, _ := b.chain(b.tl.gs[1], StateBlockedChan)
	for i := range hops {
		hops[i].Func, hops[i].Place = shortFunc(long), shortFunc(long)+"X"
		hops[i].placeInProgram = true
	}
	d := &Diagnosis{Chain: hops}
	prev := b.chainPhrase(d, "woken", 0)
	assert.Contains(t, prev, "which waited in "+shortFunc(long)+"X for goroutine 3")
	for level := 1; level < chainLevels; level++ {
		v := b.chainPhrase(d, "woken", level)
		assert.LessOrEqual(t, len(v), len(prev), "level %d is no longer than the one before: %s", level, v)
		assert.Contains(t, v, "goroutine 5", "every level names the root cause")
		assert.Contains(t, v, shortFunc(long), "and where it was")
		if level >= 4 {
			assert.Contains(t, v, shortFunc(long)+"X", "by where it spent the time, from level 4")
		}
		prev = v
	}
	assert.Less(t, len(prev), 110, "the shortest form: %s", prev)
}
