package otelfr

import "github.com/otelfr/otel-flightrecorder/internal/correlation"

// LogCategory is the runtime/trace log category under which otelfr writes
// span identities into the execution trace. Each message is
//
//	start <trace ID> <span ID>
//	end <trace ID> <span ID>
//
// with the IDs in lower-case hex (32 and 16 digits). The TracerProvider
// wrapper logs them into the span's runtime/trace task: the start always,
// and the end only for a span that lasted 10 ms or more, since the
// task's own end event marks the end of a shorter one (a window that
// begins inside a long span still names it by its end). The span
// processor, when used alone, logs both on the goroutine that starts or
// ends the span, outside any task.
const LogCategory = correlation.Category
