package analysis_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// Class 5: a timer, not a goroutine, ends the wait.
func timeoutScenarios() []libScenario {
	return []libScenario{
		{"context deadline on a slow result", classTimeout, scenarioDeadlineSelect},
		{"time.After in a select", classTimeout, scenarioTimeAfter},
		{"net-http client deadline", classTimeout, scenarioHTTPDeadline},
		{"sql deadline on an exhausted pool", classTimeout, scenarioSQLDeadline},
		{"gRPC deadline", classTimeout, scenarioGRPCDeadline},
		{"time.AfterFunc closing a channel", classTimeout, scenarioAfterFunc},
	}
}

// slowResult computes a result that takes longer than anyone waits.
//
//go:noinline
func slowResult(out chan<- int) {
	time.Sleep(4 * libWait)
	out <- 1
}

//go:noinline
func awaitResult(ctx context.Context, in <-chan int) error {
	select {
	case <-in:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func scenarioDeadlineSelect(t *testing.T, p *pipe) truth {
	var waited time.Duration
	p.span("await", func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, libWait)
		defer cancel()
		in := make(chan int, 1)
		go slowResult(in)
		waited = timed(func() { require.ErrorIs(t, awaitResult(ctx, in), context.DeadlineExceeded) })
	})
	return truth{state: analysis.StateBlockedSelect, dur: waited,
		place: "blocked in select in analysis_test.awaitResult",
		root:  []string{"the context deadline expired after"},
		check: episodeTimeout(analysis.TimeoutDeadline)}
}

//go:noinline
func pollOnce(in <-chan int, d time.Duration) bool {
	select {
	case <-in:
		return true
	case <-time.After(d):
		return false
	}
}

func scenarioTimeAfter(t *testing.T, p *pipe) truth {
	var waited time.Duration
	p.span("poll", func(ctx context.Context) {
		waited = timed(func() { require.False(t, pollOnce(make(chan int), libWait)) })
	})
	return truth{state: analysis.StateBlockedSelect, dur: waited,
		place: "blocked in select in analysis_test.pollOnce",
		root:  []string{"a timer fired after"},
		check: episodeTimeout(analysis.TimeoutTimer)}
}

func scenarioHTTPDeadline(t *testing.T, p *pipe) truth {
	srv := slowAPI(t, 4*libWait, nil)
	a := &apiClient{c: srv.Client(), base: srv.URL}
	require.NoError(t, a.get(t.Context(), "/fast"))
	var waited time.Duration
	p.span("call", func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, libWait)
		defer cancel()
		waited = timed(func() { require.Error(t, a.get(ctx, "/slow")) })
	})
	return truth{state: analysis.StateBlockedSelect, dur: waited,
		place: "blocked in select in analysis_test.(*apiClient).get",
		root:  []string{"the context deadline expired after"}}
}

func scenarioSQLDeadline(t *testing.T, p *pipe) truth {
	// A report that keeps the only connection for longer than the
	// span's deadline.
	c := &sqlConnector{started: make(chan struct{}, 1), hold: 3 * libWait}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(1)
	r := &repo{db: db}
	done := make(chan error, 1)
	go func() { done <- r.report(context.Background()) }()
	<-c.started
	var waited time.Duration
	p.span("find", func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, libWait)
		defer cancel()
		waited = timed(func() { require.ErrorIs(t, r.find(ctx), context.DeadlineExceeded) })
	})
	require.NoError(t, <-done)
	return truth{state: analysis.StateBlockedSelect, dur: waited,
		place: "blocked in select in analysis_test.(*repo).find",
		root:  []string{"the context deadline expired after"}}
}

func scenarioGRPCDeadline(t *testing.T, p *pipe) truth {
	c := grpcServer(t, p, 4*libWait)
	_, err := c.Check(t.Context(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	var waited time.Duration
	p.span("reserve", func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, libWait)
		defer cancel()
		waited = timed(func() { require.Error(t, checkInventory(ctx, c)) })
	})
	return truth{state: analysis.StateBlockedSelect, dur: waited,
		place: "blocked in select in analysis_test.checkInventory",
		root:  []string{"the context deadline expired after"}}
}

// watchdog closes done when d passes without a reset.
//
//go:noinline
func watchdog(d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	time.AfterFunc(d, func() { close(done) })
	return done
}

//go:noinline
func awaitWatchdog(done <-chan struct{}) { <-done }

func scenarioAfterFunc(t *testing.T, p *pipe) truth {
	var waited time.Duration
	p.span("watchdog", func(ctx context.Context) {
		done := watchdog(libWait)
		waited = timed(func() { awaitWatchdog(done) })
	})
	return truth{state: analysis.StateBlockedChan, dur: waited,
		place: "blocked on a channel receive in analysis_test.awaitWatchdog",
		root:  []string{"a timer fired after"}}
}

// episodeTimeout checks that the main goroutine's longest episode ended
// by the timeout.
func episodeTimeout(want analysis.Timeout) func(d *analysis.Diagnosis) error {
	return func(d *analysis.Diagnosis) error {
		for _, ep := range d.Episodes {
			if ep.Goroutine == d.MainGoroutine {
				if ep.Timeout != want {
					return errorf("episode %+v: want it ended by %q", ep, want)
				}
				return nil
			}
		}
		return errorf("no episode of the main goroutine")
	}
}
