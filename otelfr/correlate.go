package otelfr

import "github.com/otelfr/otel-flightrecorder/internal/correlation"

// LogCategory is the runtime/trace log category under which otelfr writes
// span identities into the execution trace. Each message is
//
//	start <trace ID> <span ID>
//	end <trace ID> <span ID>
//
// with the IDs in lower-case hex (32 and 16 digits). The TracerProvider
// wrapper logs the start into the span's runtime/trace task, whose end
// marks the span's end; for a span that lasted 10 ms or more it logs the
// end too, on the goroutine right after the task ended (a window that
// begins inside a long span still names it). The span processor, used
// alone, logs both on the goroutine that starts or ends the span, outside
// any task, the end right after the span's task ended. An end message
// outside any task belongs to the task that its goroutine ended last.
const LogCategory = correlation.Category
