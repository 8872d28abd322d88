package otelfr

import "github.com/otelfr/otel-flightrecorder/internal/correlation"

// LogCategory is the runtime/trace log category under which otelfr writes
// span identities into the execution trace. Each message is
//
//	start <trace ID> <span ID>
//	end <trace ID> <span ID>
//
// with the IDs in lower-case hex (32 and 16 digits). The TracerProvider
// wrapper logs them into the span's runtime/trace task; the span
// processor, when used alone, logs them on the goroutine that starts or
// ends the span, outside any task.
const LogCategory = correlation.Category
