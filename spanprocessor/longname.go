package spanprocessor

import (
	"sync"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/internal/correlation"
)

// maxLongNames bounds the spans with over-long names that are in flight at
// once and will get their names back at OnEnd; past it, a span keeps the
// bounded name.
const maxLongNames = 4096

// longNames keeps the bounded name of the task that the SDK starts for
// every span, after the processors' OnStart, out of the runtime's way: a
// task name of 64 KiB or more makes the runtime throw. A span with a name
// over [correlation.MaxTaskName] is renamed in OnStart, before the SDK
// names its task, and given its name back when it is forwarded from OnEnd.
// With the otelfr.TracerProvider wrapper, spans already start under a
// bounded name and this never fires.
type longNames struct {
	n     atomic.Int32 // entries in names: OnEnd looks only when there are some
	names sync.Map     // spanKey → the span's name; lock-free lookups
}

type spanKey struct {
	trace trace.TraceID
	span  trace.SpanID
}

// bound renames s to a bounded name if its name is too long for a task.
// It runs only while the execution tracer is on.
func (l *longNames) bound(s sdktrace.ReadWriteSpan) {
	name := s.Name()
	task, long := correlation.TaskName(name)
	if !long {
		return
	}
	s.SetName(task)
	if l.n.Add(1) > maxLongNames {
		l.n.Add(-1)
		return
	}
	sc := s.SpanContext()
	l.names.Store(spanKey{sc.TraceID(), sc.SpanID()}, name)
}

// restore returns s with the name it had before bound, if bound renamed it.
func (l *longNames) restore(s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	if l.n.Load() == 0 {
		return s
	}
	sc := s.SpanContext()
	k := spanKey{sc.TraceID(), sc.SpanID()}
	if _, ok := l.names.Load(k); !ok {
		return s
	}
	name, ok := l.names.LoadAndDelete(k)
	if !ok {
		return s
	}
	l.n.Add(-1)
	return renamed{ReadOnlySpan: s, name: name.(string)}
}

// renamed is a finished span with its name restored.
type renamed struct {
	sdktrace.ReadOnlySpan
	name string
}

// Name returns the span's name as it was started.
func (r renamed) Name() string { return r.name }
