package analysis

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	xtrace "golang.org/x/exp/trace"
)

// TestCauseIgnoresNoise pins issue 17's grouping: two diagnoses of one
// problem, seen with other goroutine IDs, durations and error addresses,
// share a cause; another root cause does not.
func TestCauseIgnoresNoise(t *testing.T) {
	cause := func(mainID int64, total time.Duration, hops []Hop, err string) string {
		b := waitChain(0)
		b.tl.gs[xtrace.GoID(mainID)] = &gtrack{id: xtrace.GoID(mainID)}
		var bk Buckets
		bk[StateBlockedChan] = total * 9 / 10
		bk[StateRunning] = total / 10
		d := &Diagnosis{
			Span:       Span{Error: err},
			Goroutines: []Goroutine{{ID: mainID, Role: RoleMain, Time: total, Buckets: bk}},
			Chain:      hops,
		}
		return b.cause(d)
	}
	a := cause(7, 240*time.Millisecond, []Hop{
		{Goroutine: 41, Func: "main.commit", State: StateBlockedChan, Duration: 200 * time.Millisecond},
		{Goroutine: 42, Func: "main.fsync", State: StateSyscall, Duration: 190 * time.Millisecond},
	}, "Unavailable from db (server.address 10.0.0.7:5432)")
	b := cause(1093, 3*time.Second, []Hop{
		{Goroutine: 5120, Func: "main.commit", State: StateBlockedChan, Duration: 2 * time.Second},
		// Seen runnable this time, as a loaded machine shows it.
		{Goroutine: 77, Func: "main.fsync", State: StateRunnable, Duration: 1900 * time.Millisecond},
	}, "Unavailable from db (server.address 10.0.3.12:5432)")
	assert.Equal(t, a, b)
	assert.Equal(t, "error: Unavailable from db (server.address #.#.#.#:#); blocked.chan; root: main.fsync", a)
	assert.NotContains(t, a, "41")

	other := cause(7, 240*time.Millisecond, []Hop{
		{Goroutine: 41, Func: "main.compact", State: StateRunning, Duration: 200 * time.Millisecond},
	}, "Unavailable from db (server.address 10.0.0.7:5432)")
	assert.NotEqual(t, a, other, "another root cause")
	assert.Equal(t, "blocked.chan; root: context deadline", func() string {
		b := waitChain(0)
		b.timeout = TimeoutDeadline
		var bk Buckets
		bk[StateBlockedChan] = time.Second
		return b.cause(&Diagnosis{Goroutines: []Goroutine{{ID: 1, Role: RoleMain, Time: time.Second, Buckets: bk}}})
	}())
}

func TestEnclosingFunc(t *testing.T) {
	for in, want := range map[string]string{
		"main.(*orders).scoreFraudDeep.func1": "main.(*orders).scoreFraudDeep",
		"main.serve.func2.1":                  "main.serve",
		"main.main":                           "main.main",
		"pkg.(*T).functional":                 "pkg.(*T).functional",
		"pkg.v2":                              "pkg.v2",
	} {
		assert.Equal(t, want, enclosingFunc(in), in)
	}
}
