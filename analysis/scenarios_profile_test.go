package analysis_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// Per-span profiles: go tool trace's blocking, network, syscall and
// scheduler-latency profiles, cut to a span's goroutines and interval.
func profileScenarios() []libScenario {
	return []libScenario{
		{"block profile of a reader behind a writer", classProfile, withProfile(scenarioRWMutex, analysis.ProfileBlock, "(*settings).get")},
		{"network profile of a slow query", classProfile, withProfile(scenarioSQLWire, analysis.ProfileNetwork, "(*wireConn).QueryContext")},
		{"syscall profile of an fsync", classProfile, withProfile(scenarioFsyncSpan, analysis.ProfileSyscall, "analysis_test.flushLog")},
		{"scheduler profile behind batch jobs", classProfile, withProfile(scenarioBatchYield, analysis.ProfileSched, "analysis_test.quote")},
	}
}

// withProfile runs a scenario and expects its span's profile of kind to
// hold the time in the dominant state, mostly at fn.
func withProfile(run func(*testing.T, *pipe) truth, kind analysis.ProfileKind, fn string) func(*testing.T, *pipe) truth {
	return func(t *testing.T, p *pipe) truth {
		tr := run(t, p)
		tr.profile = &profileTruth{kind: kind, delay: tr.dur, fn: fn}
		return tr
	}
}

// flushLog waits for the kernel to write a log out.
//
//go:noinline
func flushLog(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

func scenarioFsyncSpan(t *testing.T, p *pipe) truth {
	var waited time.Duration
	p.span("flush", func(ctx context.Context) { waited = timed(func() { flushLog(libWait) }) })
	return truth{state: analysis.StateSyscall, dur: waited,
		place: "in system calls in analysis_test.flushLog"}
}
