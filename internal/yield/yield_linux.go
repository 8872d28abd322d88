package yield

import "syscall"

// osYield calls sched_yield(2) as a system call the runtime knows of
// (syscall.Syscall, not RawSyscall), so that the P is not held while the
// thread waits for its turn on the core.
func osYield() { _, _, _ = syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
