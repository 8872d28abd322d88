package viewer_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

// Three slow spans of one route, two with one cause though their verdicts'
// numbers differ, grouped as the /causes page and `otelfr causes` show
// them.
func ExampleCauses() {
	dir, err := os.MkdirTemp("", "snapshots")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store, err := snapstore.NewDirStore(dir)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i, cause := range []string{
		"blocked.mutex in main.(*catalog).price; root: main.(*catalog).refresh",
		"blocked.select in main.(*fulfilment).submit; root: main.newFulfilment.func1",
		"blocked.mutex in main.(*catalog).price; root: main.(*catalog).refresh",
	} {
		taken := at.Add(time.Duration(i) * time.Minute)
		id := fmt.Sprintf("SNAP%d", i)
		if _, err := store.Save(ctx, &otelfr.Snapshot{ID: id, Reason: "latency", TakenAt: taken, Data: []byte("trace")}); err != nil {
			panic(err)
		}
		d := time.Duration(100+50*i) * time.Millisecond
		if err := store.AddSpans(ctx, id, []snapstore.SpanRef{{
			TraceID: fmt.Sprintf("%032x", i+1), SpanID: fmt.Sprintf("%016x", i+1), Name: "POST /orders", Reason: "latency",
			Start: taken.Add(-d), End: taken, Cause: cause,
		}}); err != nil {
			panic(err)
		}
	}

	rep, err := viewer.Causes(ctx, store, viewer.CausesQuery{From: at, To: at.Add(time.Hour)})
	if err != nil {
		panic(err)
	}
	for _, g := range rep.Groups {
		fmt.Printf("%d × %s, %v lost (p50 %v): %s; newest %s\n", g.Count, g.Span, g.Lost, g.P50, g.Cause, g.Examples[0].Link())
	}
	// Output:
	// 2 × POST /orders, 300ms lost (p50 100ms): blocked.mutex in main.(*catalog).price; root: main.(*catalog).refresh; newest SNAP2?span=0000000000000003
	// 1 × POST /orders, 150ms lost (p50 150ms): blocked.select in main.(*fulfilment).submit; root: main.newFulfilment.func1; newest SNAP1?span=0000000000000002
}
