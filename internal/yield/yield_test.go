package yield

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// On one P, a goroutine started by the caller runs only when the caller
// gives the P up.
func TestBackgroundRunsQueuedGoroutines(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var ran atomic.Bool
	go ran.Store(true)
	Background()
	require.True(t, ran.Load(), "the queued goroutine did not run")
}

func BenchmarkBackground(b *testing.B) {
	for b.Loop() {
		Background()
	}
}
