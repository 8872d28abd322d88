package analysis

import (
	"cmp"
	"encoding/hex"
	"io"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	xtrace "golang.org/x/exp/trace"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

type spanKey struct {
	tid trace.TraceID
	sid trace.SpanID
}

type listedSpan struct {
	start, end *marker
}

type listedTask struct {
	name       string
	begin, end xtrace.Time
	beginG     xtrace.GoID
	endG       xtrace.GoID
	spans      bool // has otelfr markers
}

// lister collects what Spans reports in one pass over a trace.
type lister struct {
	spans map[spanKey]*listedSpan
	order []spanKey
	tasks map[xtrace.TaskID]*listedTask
	syncs []syncPoint
	// ended is the task each goroutine ended last, and when.
	ended map[xtrace.GoID]taskEnd
}

type taskEnd struct {
	task xtrace.TaskID
	t    xtrace.Time
}

func newLister() *lister {
	return &lister{spans: map[spanKey]*listedSpan{}, tasks: map[xtrace.TaskID]*listedTask{}, ended: map[xtrace.GoID]taskEnd{}}
}

func (l *lister) read(r io.Reader) error {
	return readEvents(r, l.event)
}

func (l *lister) task(id xtrace.TaskID) *listedTask {
	t := l.tasks[id]
	if t == nil {
		t = &listedTask{beginG: xtrace.NoGoroutine, endG: xtrace.NoGoroutine}
		l.tasks[id] = t
	}
	return t
}

func (l *lister) event(ev *xtrace.Event) {
	switch ev.Kind() {
	case xtrace.EventSync:
		if cs := ev.Sync().ClockSnapshot; cs != nil {
			l.syncs = append(l.syncs, syncPoint{cs.Trace, cs.Wall})
		}
	case xtrace.EventTaskBegin, xtrace.EventTaskEnd:
		task := ev.Task()
		t := l.task(task.ID)
		if task.Type != "" {
			t.name = task.Type
		}
		if ev.Kind() == xtrace.EventTaskBegin {
			t.begin, t.beginG = ev.Time(), ev.Goroutine()
		} else {
			t.end, t.endG = ev.Time(), ev.Goroutine()
			if t.endG != xtrace.NoGoroutine {
				l.ended[t.endG] = taskEnd{task.ID, t.end}
			}
		}
	case xtrace.EventLog:
		lg := ev.Log()
		if lg.Category != otelfr.LogCategory {
			return
		}
		word, k, ok := parseMarker(lg.Message)
		if !ok {
			return
		}
		m := &marker{t: ev.Time(), g: ev.Goroutine(), task: lg.Task}
		if m.task == xtrace.NoTask {
			m.task = xtrace.BackgroundTask
		}
		if m.task == xtrace.BackgroundTask && word == markEnd {
			last := func(g xtrace.GoID) (xtrace.TaskID, xtrace.Time) { e := l.ended[g]; return e.task, e.t }
			if task, ok := endedTask(m.g, m.t, last); ok {
				m.task = task
			}
		}
		s := l.spans[k]
		if s == nil {
			s = &listedSpan{}
			l.spans[k] = s
			l.order = append(l.order, k)
		}
		if word == markStart {
			if s.start == nil {
				s.start = m
			}
		} else {
			s.end = m
		}
		if m.task != xtrace.BackgroundTask {
			l.task(m.task).spans = true
		}
	}
}

// parseMarker parses an otelfr.LogCategory message.
func parseMarker(msg string) (markKind, spanKey, bool) {
	var k spanKey
	word, rest, _ := strings.Cut(msg, " ")
	tr, sp, _ := strings.Cut(rest, " ")
	if len(tr) != 2*len(k.tid) || len(sp) != 2*len(k.sid) {
		return 0, k, false
	}
	if _, err := hex.Decode(k.tid[:], []byte(tr)); err != nil {
		return 0, k, false
	}
	if _, err := hex.Decode(k.sid[:], []byte(sp)); err != nil {
		return 0, k, false
	}
	switch word {
	case "start":
		return markStart, k, true
	case "end":
		return markEnd, k, true
	}
	return 0, k, false
}

func (l *lister) wall(t xtrace.Time) time.Time {
	tl := timeline{syncs: l.syncs}
	return tl.toWall(t)
}

func (l *lister) list() []SpanInfo {
	var out []SpanInfo
	for _, k := range l.order {
		s := l.spans[k]
		info := SpanInfo{TraceID: k.tid, SpanID: k.sid, Goroutine: -1, Status: StatusPartial}
		var task xtrace.TaskID
		for _, m := range []*marker{s.end, s.start} {
			if m != nil {
				info.Goroutine = int64(m.g)
				if m.task != xtrace.BackgroundTask {
					task = m.task
				}
			}
		}
		if task != xtrace.BackgroundTask {
			info.Task = uint64(task)
			if t := l.tasks[task]; t != nil {
				info.Name = t.name
			}
		}
		if s.start != nil {
			info.Start = l.wall(s.start.t)
		}
		switch t := l.tasks[task]; {
		case s.end != nil:
			info.End = l.wall(s.end.t)
		case task != xtrace.BackgroundTask && t != nil && t.end != 0:
			// The wrapper logs the end of a long span only: the task's
			// end is the span's.
			info.End = l.wall(t.end)
		}
		if s.start != nil && !info.End.IsZero() {
			info.Status = StatusComplete
		}
		out = append(out, info)
	}
	for id, t := range l.tasks {
		if t.spans {
			continue
		}
		info := SpanInfo{Name: t.name, Task: uint64(id), Goroutine: int64(t.beginG), Status: StatusPartial}
		if t.begin != 0 {
			info.Start = l.wall(t.begin)
		} else {
			info.Goroutine = int64(t.endG)
		}
		if t.end != 0 {
			info.End = l.wall(t.end)
		}
		if t.begin != 0 && t.end != 0 {
			info.Status = StatusComplete
		}
		out = append(out, info)
	}
	slices.SortStableFunc(out, func(a, b SpanInfo) int {
		ta, tb := a.Start, b.Start
		if ta.IsZero() {
			ta = a.End
		}
		if tb.IsZero() {
			tb = b.End
		}
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return cmp.Compare(a.Task, b.Task)
	})
	return out
}
