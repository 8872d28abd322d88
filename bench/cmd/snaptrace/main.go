// Command snaptrace reads an execution trace of the item 3 server (written
// with BENCH_DUMP_TRACE=FILE scripts/bench.sh -items 3) and says what
// delays the other goroutines while the span processor's worker takes and
// stores a snapshot:
//
//   - the stop-the-world pauses and GC cycles, and how many fall in a
//     snapshot;
//   - how long goroutines wait for a P (runnable to running), during
//     snapshots and outside them;
//   - for each HTTP goroutine that waited more than 1ms for a P during a
//     snapshot, what the other Ps were running when it got one;
//   - the worker's running stretches longer than 1ms, by where they ended.
//
// A snapshot is a stretch of more than 2ms during which the worker is not
// blocked.
//
//	cd bench && go run ./cmd/snaptrace FILE
package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	xtrace "golang.org/x/exp/trace"
)

type interval struct{ from, to xtrace.Time }

type intervals []interval

func (s intervals) contains(t xtrace.Time) bool {
	for _, iv := range s {
		if t >= iv.from && t <= iv.to {
			return true
		}
	}
	return false
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: snaptrace FILE")
		os.Exit(2)
	}
	evs, err := read(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "snaptrace:", err)
		os.Exit(1)
	}
	report(evs, snapshots(evs))
}

func read(path string) ([]xtrace.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := xtrace.NewReader(f)
	if err != nil {
		return nil, err
	}
	var evs []xtrace.Event
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			return evs, nil
		}
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
}

// goTransition returns the goroutine a state transition is about, and
// whether the event is one; own is true when that goroutine emitted it, so
// that the stack is its own.
func goTransition(ev xtrace.Event) (id xtrace.GoID, from, to xtrace.GoState, stack xtrace.Stack, own, ok bool) {
	if ev.Kind() != xtrace.EventStateTransition {
		return 0, 0, 0, xtrace.NoStack, false, false
	}
	st := ev.StateTransition()
	if st.Resource.Kind != xtrace.ResourceGoroutine {
		return 0, 0, 0, xtrace.NoStack, false, false
	}
	id = st.Resource.Goroutine()
	from, to = st.Goroutine()
	return id, from, to, st.Stack, ev.Goroutine() == id, true
}

func has(st xtrace.Stack, fn string) bool {
	for f := range st.Frames() {
		if strings.Contains(f.Func, fn) {
			return true
		}
	}
	return false
}

func top(st xtrace.Stack, n int) string {
	var out []string
	for f := range st.Frames() {
		if out = append(out, f.Func); len(out) == n {
			break
		}
	}
	return strings.Join(out, " < ")
}

// snapshots returns the stretches of more than 2ms during which a span
// processor worker was not blocked.
func snapshots(evs []xtrace.Event) intervals {
	workers := map[xtrace.GoID]bool{}
	since := map[xtrace.GoID]xtrace.Time{}
	var out intervals
	for _, ev := range evs {
		id, from, to, st, own, ok := goTransition(ev)
		if !ok {
			continue
		}
		if own && has(st, "spanprocessor.(*Processor).run") {
			workers[id] = true
		}
		if !workers[id] {
			continue
		}
		if from == xtrace.GoWaiting && to != xtrace.GoWaiting {
			since[id] = ev.Time()
		}
		if to == xtrace.GoWaiting {
			if t0, ok := since[id]; ok && ev.Time()-t0 > 2e6 {
				out = append(out, interval{t0, ev.Time()})
			}
			delete(since, id)
		}
	}
	return out
}

type goInfo struct {
	worker, http bool
	state        xtrace.GoState
	since        xtrace.Time
	last         string // top frames where it last stopped running
}

func report(evs []xtrace.Event, snaps intervals) {
	ms := func(d xtrace.Time) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }
	gs := map[xtrace.GoID]*goInfo{}
	info := func(id xtrace.GoID) *goInfo {
		if gs[id] == nil {
			gs[id] = &goInfo{}
		}
		return gs[id]
	}
	running := map[xtrace.GoID]xtrace.Time{}
	stwOpen := map[string]xtrace.Time{}
	var stw []xtrace.Time
	var stwIn, gcs, gcIn int
	var waitIn, waitOut []xtrace.Time
	blockers := map[string]int{}
	stretches := map[string]int{}
	stretchTime := map[string]xtrace.Time{}
	for _, ev := range evs {
		t := ev.Time()
		switch ev.Kind() {
		case xtrace.EventRangeBegin:
			name := ev.Range().Name
			if strings.HasPrefix(name, "stop-the-world") {
				stwOpen[name] = t
			}
			if name == "GC concurrent mark phase" {
				gcs++
				if snaps.contains(t) {
					gcIn++
				}
			}
		case xtrace.EventRangeEnd:
			name := ev.Range().Name
			if t0, ok := stwOpen[name]; ok {
				stw = append(stw, t-t0)
				if snaps.contains(t0) {
					stwIn++
				}
				delete(stwOpen, name)
			}
		}
		id, from, to, st, own, ok := goTransition(ev)
		if !ok {
			continue
		}
		g := info(id)
		if own && has(st, "spanprocessor.(*Processor).run") {
			g.worker = true
		}
		if own && has(st, "net/http.(*conn).serve") {
			g.http = true
		}
		if from == xtrace.GoRunning {
			if own {
				g.last = top(st, 2)
			}
			if t0, ok := running[id]; ok && g.worker && t-t0 > 1e6 && snaps.contains(t) {
				k := fmt.Sprintf("%v→%v in %s", from, to, top(st, 3))
				stretches[k]++
				stretchTime[k] += t - t0
			}
			delete(running, id)
		}
		if to == xtrace.GoRunning {
			running[id] = t
			if from == xtrace.GoRunnable && g.state == xtrace.GoRunnable && g.since > 0 && !g.worker {
				w := t - g.since
				if snaps.contains(t) {
					waitIn = append(waitIn, w)
					if g.http && w > 1e6 {
						blockers[others(gs, running, id)]++
					}
				} else {
					waitOut = append(waitOut, w)
				}
			}
		}
		g.state, g.since = to, t
	}

	fmt.Printf("snapshots (worker busy > 2ms): %d\n", len(snaps))
	slices.Sort(stw)
	if len(stw) > 0 {
		fmt.Printf("stop-the-world pauses: %d, %d starting in a snapshot; p50 %s, p99 %s, max %s\n",
			len(stw), stwIn, ms(q(stw, .5)), ms(q(stw, .99)), ms(stw[len(stw)-1]))
	}
	fmt.Printf("GC cycles: %d, %d starting in a snapshot\n", gcs, gcIn)
	slices.Sort(waitIn)
	slices.Sort(waitOut)
	fmt.Printf("waits for a P (runnable→running), other goroutines: during snapshots n=%d p50 %s p99 %s max %s; outside n=%d p50 %s p99 %s max %s\n",
		len(waitIn), ms(q(waitIn, .5)), ms(q(waitIn, .99)), ms(q(waitIn, 1)),
		len(waitOut), ms(q(waitOut, .5)), ms(q(waitOut, .99)), ms(q(waitOut, 1)))
	fmt.Println("HTTP goroutines that waited > 1ms for a P during a snapshot; what the other Ps ran when they got one:")
	printCounts(blockers, nil, ms)
	fmt.Println("worker running stretches > 1ms during snapshots, by where they ended:")
	printCounts(stretches, stretchTime, ms)
}

// others names what the goroutines running beside id are.
func others(gs map[xtrace.GoID]*goInfo, running map[xtrace.GoID]xtrace.Time, id xtrace.GoID) string {
	var who []string
	for rid := range running {
		if rid == id {
			continue
		}
		g := gs[rid]
		switch {
		case g == nil:
			who = append(who, "unknown")
		case g.worker:
			who = append(who, "snapshot worker")
		case g.http:
			who = append(who, "HTTP")
		case strings.Contains(g.last, "gcBgMarkWorker"):
			who = append(who, "GC worker")
		default:
			who = append(who, "other ("+g.last+")")
		}
	}
	if len(who) == 0 {
		return "no goroutine: the P's thread was off the CPU or in a syscall"
	}
	sort.Strings(who)
	return strings.Join(who, " + ")
}

func printCounts(n map[string]int, total map[string]xtrace.Time, ms func(xtrace.Time) string) {
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return n[keys[i]] > n[keys[j]] })
	for _, k := range keys[:min(len(keys), 12)] {
		if total != nil {
			fmt.Printf("  %4d  %9s  %s\n", n[k], ms(total[k]), k)
		} else {
			fmt.Printf("  %4d  %s\n", n[k], k)
		}
	}
}

func q(sorted []xtrace.Time, p float64) xtrace.Time {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p*float64(len(sorted)-1))]
}
