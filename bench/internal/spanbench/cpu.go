package spanbench

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// CPU measures the CPU time of the benchmark's own thread. On a shared
// machine ns/op counts the time the thread waited for a core while other
// processes ran; the thread's CPU time does not. It leaves out work done on
// other threads: the concurrent part of GC and the flight recorder's
// reader goroutine (their cost shows in the service-level measurement).
type CPU struct {
	start time.Duration
}

// rusageThread is RUSAGE_THREAD (Linux).
const rusageThread = 1

// StartCPU locks the calling goroutine to its thread, so that the thread's
// CPU time is the benchmark loop's, and starts measuring.
func StartCPU() *CPU {
	runtime.LockOSThread()
	return &CPU{start: threadCPU()}
}

// Report unlocks the thread and reports the CPU time per iteration of the
// b.Loop that just ended, as cpu-ns/op.
func (c *CPU) Report(b *testing.B) {
	d := threadCPU() - c.start
	runtime.UnlockOSThread()
	if b.N > 0 && d > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
