// Package yield is how otelfr's background work (writing a snapshot,
// hashing it, uploading it) gives way to the process it serves between
// pieces of that work.
//
// runtime.Gosched alone lets the goroutines queued on the same P run, but
// not the threads waiting for the same core: on a machine with few cores,
// the requests of the process itself (its other P's thread), the network
// stack and the process's peers wait behind the snapshot's thread, in
// user code and in the kernel's copies into the page cache alike. On
// Linux, [Background] also calls sched_yield(2), which hands the core to
// the threads waiting for it and returns at once when there are none.
package yield

import "runtime"

// Background yields the P to the goroutines queued behind the caller and,
// where the platform allows it, the CPU to the threads waiting for it. It
// costs a system call and no wait when nothing else is ready to run.
// Callers call it between pieces of background work, about every MiB.
func Background() {
	runtime.Gosched()
	osYield()
}
