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
