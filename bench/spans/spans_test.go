// Package spans runs the per-span benchmarks in a process where no
// otelfr.TracerProvider wrapper exists: the span processor logs span
// identities itself while the flight recorder runs. Package wrapped runs
// them where one does.
package spans

import (
	"testing"

	"github.com/otelfr/otel-flightrecorder/bench/internal/spanbench"
)

func BenchmarkSpan(b *testing.B)  { spanbench.BenchmarkSpan(b, false) }
func BenchmarkOnEnd(b *testing.B) { spanbench.BenchmarkOnEnd(b) }
