package analysis_test

import (
	"context"
	"testing"
	"time"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// Class 6: a span longer than the snapshot's window is linked, partial,
// and its covered tail diagnosed.
func partialScenarios() []libScenario {
	return []libScenario{
		{"nightly export longer than the window", classPartial, scenarioLongExport},
	}
}

// exportBatch sleeps between the pages of a long export, as a rate-limited
// job does.
//
//go:noinline
func exportBatch(pages int, pause time.Duration) {
	for range pages {
		time.Sleep(pause)
	}
}

func scenarioLongExport(t *testing.T, p *pipe) truth {
	// A window of about a second: the runtime cuts a generation about
	// every second, and drops those older than MinAge.
	p.restart(otelfr.WithMinAge(100 * time.Millisecond))
	p.span("nightly export", func(ctx context.Context) { exportBatch(25, 100*time.Millisecond) })
	return truth{state: analysis.StateBlockedSleep, status: analysis.StatusPartial,
		place: "sleeping in analysis_test.exportBatch",
		root:  []string{"(partial: began before the window"}}
}
