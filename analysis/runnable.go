package analysis

import (
	"cmp"
	"slices"
	"strconv"
	"time"

	xtrace "golang.org/x/exp/trace"
)

// FuncTime is the time goroutines spent running in one function.
type FuncTime struct {
	// Func is the goroutines' place: the first frame in the program's own
	// code of the stacks where they stopped running (or of their CPU
	// samples), else of a library, else their entry function.
	Func string `json:"func"`
	// Goroutines ran there for Time in all, added over goroutines: on
	// several Ps at once, more than the wall time that passed.
	Goroutines int           `json:"goroutines"`
	Time       time.Duration `json:"time"`
}

// maxHolders bounds Diagnosis.RanWhileRunnable.
const maxHolders = 5

// runnableWindows returns the stretches in which g was runnable.
func (b *builder) runnableWindows(g *gtrack) []window {
	var ws []window
	for i := range g.segs {
		if s := &g.segs[i]; s.state == StateRunnable {
			ws = clipTo(s.start, s.end, []window{{b.a, b.b}}, ws)
		}
	}
	return ws
}

// holders returns who ran while g was runnable, grouped by function, the
// busiest first: the goroutines that held the Ps it waited for.
func (b *builder) holders(g *gtrack) []FuncTime {
	return b.holdersIn(g, []window{{b.a, b.b}})
}

// holdersIn is holders within the windows in. A function's goroutines
// are counted if they ran within in at all, not only while g was runnable:
// on two Ps, the scheduler's round robin can run one of a pool beside g
// for every slice it gets (one of twelve spinners ran 20 ms of a span's
// 295 ms, 57 µs of them while the span waited), and whether it counts
// would then turn on microseconds; it is one of the pool that took turns
// with g for the Ps all the same. Time is only what ran while g was
// runnable.
func (b *builder) holdersIn(g *gtrack, in []window) []FuncTime {
	var ws []window
	for i := range g.segs {
		if s := &g.segs[i]; s.state == StateRunnable {
			ws = clipTo(s.start, s.end, in, ws)
		}
	}
	if len(ws) == 0 {
		return nil
	}
	type acc struct {
		t  time.Duration
		gs int
	}
	byFunc := map[string]*acc{}
	for id, o := range b.tl.gs {
		if id == g.id {
			continue
		}
		var ran, ranIn time.Duration
		for i := range o.segs {
			if s := &o.segs[i]; s.state == StateRunning || s.state == StateGCAssist {
				ran += overlapIn(s.start, s.end, ws)
				ranIn += overlapIn(s.start, s.end, in)
			}
		}
		if ranIn == 0 {
			continue
		}
		f := b.goroutineFunc(o)
		a := byFunc[f]
		if a == nil {
			a = &acc{}
			byFunc[f] = a
		}
		a.t += ran
		a.gs++
	}
	out := make([]FuncTime, 0, len(byFunc))
	for f, a := range byFunc {
		if a.t > 0 {
			out = append(out, FuncTime{Func: f, Goroutines: a.gs, Time: a.t})
		}
	}
	slices.SortFunc(out, func(x, y FuncTime) int {
		if c := cmp.Compare(y.Time, x.Time); c != 0 {
			return c
		}
		return cmp.Compare(x.Func, y.Func)
	})
	if len(out) > maxHolders {
		out = out[:maxHolders]
	}
	return out
}

// goroutineFunc names what a goroutine does: the place of its running
// time in the interval, else of any of its stacks, else its entry
// function.
func (b *builder) goroutineFunc(g *gtrack) string {
	if f, ok := b.gfuncs[g.id]; ok {
		return f
	}
	f, _ := b.placeIn(g, StateRunning, []window{{b.a, b.b}})
	if f == "" {
		// Any stack will do: the goroutine's waits or syscalls.
		best := numFrameClasses
		for i := range g.segs {
			s := &g.segs[i]
			if s.stack == xtrace.NoStack {
				continue
			}
			if fr, c := b.cfg.program.placeFrame(b.stackFrames(s.stack)); fr.Func != "" && c < best {
				f, best = shortFunc(fr.Func), c
			}
		}
	}
	if f == "" {
		f = shortFunc(entryFunc(g.entry))
	}
	if f == "" {
		f = "goroutine " + strconv.FormatInt(int64(g.id), 10)
	}
	if b.gfuncs == nil {
		b.gfuncs = map[xtrace.GoID]string{}
	}
	b.gfuncs[g.id] = f
	return f
}
