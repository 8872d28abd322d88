// Package wrapped runs the per-span benchmarks in a process where an
// otelfr.TracerProvider wrapper exists, as in the recommended setup: the
// span processor then leaves span identities to the wrapper. Package spans
// runs them where none does.
package wrapped

import (
	"os"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelfr/otel-flightrecorder/bench/internal/spanbench"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

func TestMain(m *testing.M) {
	// A wrapper marks the whole process as wrapped, before any benchmark
	// runs; the benchmarks do not depend on their order.
	otelfr.WrapTracerProvider(sdktrace.NewTracerProvider())
	os.Exit(m.Run())
}

func BenchmarkSpan(b *testing.B)  { spanbench.BenchmarkSpan(b, true) }
func BenchmarkOnEnd(b *testing.B) { spanbench.BenchmarkOnEnd(b) }
