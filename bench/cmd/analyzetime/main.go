// Command analyzetime times analysis.Analyze on a snapshot: the time from
// the snapshot's bytes in memory to a span's diagnosis. It is a program of
// its own, built apart from the runner, so that the rest of the benchmarks
// run while package analysis does not build.
//
//	analyzetime -trace FILE.trace -span FILE.json [-n 5]
//
// The span file is the runner's record of the anomalous span (trace_id,
// span_id, start and end in Unix nanoseconds). It prints one JSON object.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

func main() {
	tracePath := flag.String("trace", "", "snapshot file")
	spanPath := flag.String("span", "", "span record (JSON)")
	n := flag.Int("n", 5, "runs")
	flag.Parse()
	if err := run(*tracePath, *spanPath, *n); err != nil {
		fmt.Fprintln(os.Stderr, "analyzetime:", err)
		os.Exit(1)
	}
}

type result struct {
	Bytes     int      `json:"bytes"`
	Durations []int64  `json:"durations_ns"` // one per run; the first is cold
	Verdict   string   `json:"verdict"`
	Status    string   `json:"status"`
	Parsed    any      `json:"parsed"`
	Errors    []string `json:"errors,omitempty"`
}

func run(tracePath, spanPath string, n int) error {
	data, err := os.ReadFile(tracePath)
	if err != nil {
		return err
	}
	var rec struct {
		TraceID string `json:"trace_id"`
		SpanID  string `json:"span_id"`
		Start   int64  `json:"start"`
		End     int64  `json:"end"`
	}
	b, err := os.ReadFile(spanPath)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return err
	}
	tid, err := trace.TraceIDFromHex(rec.TraceID)
	if err != nil {
		return err
	}
	sid, err := trace.SpanIDFromHex(rec.SpanID)
	if err != nil {
		return err
	}
	span := analysis.Span{TraceID: tid, SpanID: sid, Start: time.Unix(0, rec.Start), End: time.Unix(0, rec.End)}
	res := result{Bytes: len(data)}
	for range n {
		t0 := time.Now()
		d, err := analysis.Analyze(data, span)
		res.Durations = append(res.Durations, int64(time.Since(t0)))
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
			continue
		}
		res.Verdict, res.Status, res.Parsed = d.Verdict, string(d.Status), d.Parsed
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
