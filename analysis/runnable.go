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
	// samples, or of their other stacks when those are the program's),
	// else of a library, else their entry function. A goroutine the trace
	// never saw stop is named as most of its kin are (those started by
	// the same function through the same entry), else by the program's
	// function that started it.
	Func string `json:"func"`
	// Goroutines of Func ran within the interval, on a P, for Time in all
	// while the goroutine they are counted for was runnable, added over
	// goroutines: on several Ps at once, more than the wall time that
	// passed. A goroutine whose time slices all fell beside that one's is
	// counted, for no time.
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
			if s := &o.segs[i]; s.onCPU() {
				ran += overlapIn(s.start, s.end, ws)
				ranIn += overlapIn(s.start, s.end, in)
			}
		}
		if ranIn == 0 {
			continue
		}
		f := b.goroutineFunc(o)
		if ran > 0 {
			b.unnamed(o, f)
		}
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

// goroutineFunc names what a goroutine does: runPlace, else its entry
// function; one of which the trace holds no stack, see unseenFunc.
func (b *builder) goroutineFunc(g *gtrack) string {
	if f, ok := b.gfuncs[g.id]; ok {
		return f
	}
	f, c := b.runPlace(g)
	if c != classProgram && len(segStacks(g)) == 0 {
		// It ran to its end unseen, as a short one does: named as
		// most of its kin are, else as ownFunc names it.
		if k := b.unseenFunc(g); k != "" {
			f = k
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

// runPlace names where g ran: the place of its running time in the
// interval, unless another of its stacks (its waits, its syscalls, its GC
// assists, which split its running time and hold its stacks when the rest
// of it has none) is in a better class of code.
func (b *builder) runPlace(g *gtrack) (string, frameClass) {
	f, c := b.placeIn(g, StateRunning, []window{{b.a, b.b}})
	if c == classProgram {
		return f, c
	}
	other, best := "", numFrameClasses
	for i := range g.segs {
		s := &g.segs[i]
		if s.stack == xtrace.NoStack {
			continue
		}
		if fr, oc := b.cfg.program.placeFrame(b.stackFrames(s.stack)); fr.Func != "" && oc < best {
			other, best = shortFunc(fr.Func), oc
		}
	}
	if other != "" && (f == "" || best < c) {
		return other, best
	}
	return f, c
}

// unseenFunc names a goroutine of which the trace holds no stack but its
// start (it ran to its end without stopping, as a short one does): by the
// place, in the program's code, of the running time of most of its kin
// that the trace saw stop, the
// goroutines started by the same function of the program through the same
// entry (a pool's, one per event); else, as ownFunc, by the program's
// function that started it (a closure is the work of the function it is
// in), rather than by its entry, often a library's wrapper
// (sync.(*WaitGroup).Go.func1, errgroup's). "" when neither names it.
func (b *builder) unseenFunc(g *gtrack) string {
	own := b.knownOwnFunc(g)
	if own == "" {
		return ""
	}
	key := entryFunc(g.entry) + "\x00" + own
	if f, ok := b.kinPlaces[key]; ok {
		return f
	}
	names := map[string]time.Duration{}
	for _, o := range b.tl.gs {
		if o.id == g.id || len(segStacks(o)) == 0 || entryFunc(o.entry)+"\x00"+b.knownOwnFunc(o) != key {
			continue
		}
		// Only a name in the program's code: one stopped by the GC at
		// its entry is named by the wrapper, which tells nothing.
		if f, c := b.runPlace(o); c == classProgram {
			names[f]++
		}
	}
	f, ok := maxKey(names)
	if !ok {
		f = own
	}
	if b.kinPlaces == nil {
		b.kinPlaces = map[string]string{}
	}
	b.kinPlaces[key] = f
	return f
}
