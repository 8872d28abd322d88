package otelfr

import (
	"time"
)

// Snapshot is one window of the Go execution trace, written out of the
// flight recorder by [Recorder.Snapshot]. Data is in the format that
// `go tool trace` and golang.org/x/exp/trace read.
//
// A Snapshot is immutable once returned: concurrent callers of
// [Recorder.Snapshot] that shared one in-flight snapshot receive the same
// value, so they must not modify it.
type Snapshot struct {
	// ID identifies the snapshot: 26 random characters from the URL-safe
	// alphabet A-Z, 2-7.
	ID string

	// Reason says why the snapshot was taken, as given to Recorder.Snapshot
	// by the caller that started it (for example "latency" or "error").
	Reason string

	// Data is the execution trace; nil for a snapshot that
	// [Recorder.WriteSnapshot] wrote elsewhere.
	Data []byte

	// SHA256 is the hex SHA-256 of Data, computed as it was written out of
	// the flight recorder by [Recorder.Snapshot]. It is empty in a
	// Snapshot that [Recorder.WriteSnapshot] wrote elsewhere, unhashed,
	// and in one made by other means, whose Data a store hashes itself.
	SHA256 string

	// Start and End are the wall-clock interval covered by Data.
	//
	// They are read from the trace itself: the runtime records a clock
	// snapshot (trace clock and wall clock together) at the start of every
	// generation, and the timestamps of the first and last batches of
	// events are converted through it. Both are therefore exact to within
	// the trace clock's resolution and the span of one batch, typically well
	// under a millisecond. If the trace cannot be read, Start falls back to
	// the later of the recorder's start and TakenAt minus MinAge, and End to
	// the time the write finished; both are then estimates.
	Start, End time.Time

	// TakenAt is when the write out of the flight recorder began.
	TakenAt time.Time

	// WriteDuration is how long the write out of the flight recorder took.
	WriteDuration time.Duration

	// MinAge and MaxBytes are the window settings of the recorder that took
	// the snapshot; both are zero for an adopted flight recorder, whose
	// settings are unknown.
	MinAge   time.Duration
	MaxBytes uint64

	// CrashOutput is, in a snapshot of a crash ([ReasonCrash]), what the
	// crashed process's runtime wrote about it through
	// runtime/debug.SetCrashOutput: a panic's or fatal error's message and
	// the goroutines' stacks, up to [MaxCrashOutput] bytes. It is empty for
	// other snapshots, and for a process killed without a word (SIGKILL,
	// the kernel's OOM killer).
	CrashOutput string

	size int64 // of the trace written, when Data is nil
}

// Size returns the size of the snapshot's trace in bytes: len(Data), or
// for a snapshot written by [Recorder.WriteSnapshot], the bytes written.
func (s *Snapshot) Size() int64 {
	if s.Data == nil {
		return s.size
	}
	return int64(len(s.Data))
}

// Covers reports whether the interval [start, end] lies within the
// snapshot's window, that is whether the trace holds everything that
// happened between start and end.
func (s *Snapshot) Covers(start, end time.Time) bool {
	return !start.Before(s.Start) && !end.After(s.End)
}
