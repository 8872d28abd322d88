package otelfr

import (
	"errors"
	"fmt"
)

var (
	// ErrAlreadyActive is returned by [Start] when a flight recorder is
	// already active in the process: another Recorder, or a
	// [runtime/trace.FlightRecorder] started elsewhere. The runtime allows
	// only one at a time.
	ErrAlreadyActive = errors.New("otelfr: a flight recorder is already active in this process")

	// ErrRateLimited is returned by [Recorder.Snapshot] when a snapshot is
	// refused because the previous one started less than the minimum
	// interval ago. [ErrByteBudget] also matches it with [errors.Is].
	ErrRateLimited = errors.New("otelfr: snapshot rate limited")

	// ErrByteBudget is returned by [Recorder.Snapshot] when the snapshots
	// of the current budget period have used up the byte budget.
	// errors.Is(ErrByteBudget, ErrRateLimited) is true.
	ErrByteBudget = fmt.Errorf("%w: byte budget exhausted", ErrRateLimited)

	// ErrStopped is returned by [Recorder.Snapshot] after [Recorder.Stop],
	// or when the flight recorder was stopped by someone else.
	ErrStopped = errors.New("otelfr: recorder stopped")

	// ErrDiskInUse is returned by [Start] in disk mode ([WithDisk]) when
	// another process holds the ring's directory.
	ErrDiskInUse = errors.New("otelfr: disk ring directory in use by another process")

	// ErrNoCrash is returned by [Recorder.WriteCrashSnapshot] when Start
	// found no ring left by a crash, or [Recorder.RemoveCrash] removed it.
	ErrNoCrash = errors.New("otelfr: no crash to write")
)
