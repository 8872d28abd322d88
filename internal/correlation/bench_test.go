package correlation

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	rt "runtime/trace"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// BenchmarkLog measures what logging span identities costs per span with
// a flight recorder on (issue 15): the two messages logged today, at the
// start and the end, against one at the end, from 1, 2, 4 and 8
// goroutines starting spans in parallel. Every message is a new string in
// the runtime's string table, taken under its lock; ns/op is wall time
// per span over all goroutines, so on a machine with fewer cores than
// goroutines, growth from one column to the next is contention, not work.
//
//	go test -run XXX -bench Log -count 6 ./internal/correlation/
func BenchmarkLog(b *testing.B) {
	fr := rt.NewFlightRecorder(rt.FlightRecorderConfig{MaxBytes: 16 << 20})
	if err := fr.Start(); err != nil {
		b.Skip(err)
	}
	defer fr.Stop()
	var ids atomic.Uint64
	for _, mode := range []struct {
		name string
		logs []string
	}{
		{"start+end", []string{Start, End}},
		{"end", []string{End}},
	} {
		for _, g := range []int{1, 2, 4, 8} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", mode.name, g), func(b *testing.B) {
				b.SetParallelism(max(1, g/runtime.GOMAXPROCS(0)))
				if g == 1 {
					for b.Loop() {
						logSpan(&ids, mode.logs)
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						logSpan(&ids, mode.logs)
					}
				})
			})
		}
	}
}

// logSpan logs the messages of one span with a unique identity.
func logSpan(ids *atomic.Uint64, events []string) {
	var cfg trace.SpanContextConfig
	id := ids.Add(1)
	binary.LittleEndian.PutUint64(cfg.TraceID[:8], id)
	binary.LittleEndian.PutUint64(cfg.SpanID[:], id)
	sc := trace.NewSpanContext(cfg)
	for _, e := range events {
		Log(context.Background(), e, sc)
	}
}
