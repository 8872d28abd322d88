// Package correlation writes span identities into the Go execution trace,
// in the format documented at otelfr.LogCategory. It is shared by the
// TracerProvider wrapper in package otelfr and the span processor.
package correlation

import (
	"context"
	"encoding/hex"
	rt "runtime/trace"
	"sync"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"

	"go.opentelemetry.io/otel/trace"
)

// Category is the runtime/trace log category; otelfr.LogCategory exports it.
const Category = "otelfr.span"

// Events logged for a span.
const (
	Start = "start"
	End   = "end"
)

const msgLen = len(Start) + 1 + 2*len(trace.TraceID{}) + 1 + 2*len(trace.SpanID{})

// buffers hold messages while runtime/trace copies them: trace.Log's
// parameters escape, so a message built on the stack would be allocated on
// the heap every time.
var buffers = sync.Pool{New: func() any { return new([msgLen]byte) }}

// Log writes "<event> <trace ID> <span ID>" under Category into the task
// carried by ctx, or outside any task for a context without one. The caller
// checks runtime/trace.IsEnabled first.
func Log(ctx context.Context, event string, sc trace.SpanContext) {
	b := buffers.Get().(*[msgLen]byte)
	n := copy(b[:], event)
	b[n] = ' '
	n++
	tid, sid := sc.TraceID(), sc.SpanID()
	n += hex.Encode(b[n:], tid[:])
	b[n] = ' '
	n++
	n += hex.Encode(b[n:], sid[:])
	// The runtime copies the message into the trace buffer before Log
	// returns, so the buffer may be reused afterwards.
	rt.Log(ctx, Category, unsafe.String(&b[0], n))
	buffers.Put(b)
}

// wrapped counts the TracerProvider wrappers ever created in the process.
// Once there is one, span identities are logged into tasks, and the span
// processor does not log them again on the goroutine. It is never
// decremented: a wrapper has no end of life (it is shut down through the
// provider it wraps), and a program registers its wrapper once. A program
// that wraps one provider but also records spans through another, unwrapped
// one loses the goroutine fallback for the latter.
var wrapped atomic.Int64

// AddWrapper records that a TracerProvider wrapper logs span identities.
func AddWrapper() { wrapped.Add(1) }

// Wrapped reports whether a TracerProvider wrapper has been created in the
// process.
func Wrapped() bool { return wrapped.Load() > 0 }

// MaxTaskName is the longest span name that may become the name of a
// runtime/trace task. The runtime keeps at most 1 KiB of any string in the
// trace (longer ones are truncated when written), but it first copies the
// whole string into its string table, and a string of 64 KiB or more makes
// it throw "traceRegion: alloc too large", killing the process. Span names
// can come from outside (an HTTP route, a SQL statement), so no longer name
// may reach runtime/trace.NewTask.
const MaxTaskName = 1 << 10

// TaskName returns the name to give a span's task: name itself, or its
// first MaxTaskName bytes cut at a rune boundary (what the trace would keep
// of it anyway), with long reporting whether it was cut.
func TaskName(name string) (task string, long bool) {
	if len(name) <= MaxTaskName {
		return name, false
	}
	n := MaxTaskName
	for n > 0 && !utf8.RuneStart(name[n]) {
		n--
	}
	return name[:n], true
}
