package analysis

import (
	"testing"

	"github.com/stretchr/testify/assert"
	xtrace "golang.org/x/exp/trace"
)

// TestGCStarterOwnCycle pins who started a collection: the runtime begins
// a cycle's mark phase before it stops the world for the cycle's sweep
// termination, so the last sweep termination before the mark phase is the
// previous cycle's. A heap-profile scrape's collection (gc=1) was named
// "forced by analysis_test.scenarioHeapProfileGC", the test's own
// runtime.GC of the cycle before.
func TestGCStarterOwnCycle(t *testing.T) {
	tl := &timeline{gs: map[xtrace.GoID]*gtrack{}}
	tl.stws = []interval{
		{start: 10, end: 11, name: "stop-the-world (GC sweep termination)", g: 1},
		{start: 19, end: 20, name: "stop-the-world (GC mark termination)", g: 9},
		{start: 31, end: 32, name: "stop-the-world (GC sweep termination)", g: 2},
		{start: 49, end: 50, name: "stop-the-world (GC mark termination)", g: 9},
	}
	tl.marks = []interval{{start: 9, end: 20}, {start: 30, end: 50}}
	b := &builder{tl: tl, a: 25, b: 60, cfg: newConfig(nil)}
	id, _, _ := b.gcStarter()
	assert.Equal(t, "goroutine 2", id)
	// The mark termination is the doing of the cycle's starter too.
	causes := b.stwCauses()
	for _, c := range causes {
		assert.Equal(t, int64(2), c.Goroutine, c.Reason)
	}
}
