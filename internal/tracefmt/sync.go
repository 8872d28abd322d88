package tracefmt

import (
	"errors"
	"fmt"
)

// SyncEvent is one event of a sync batch: the trace clock's frequency or a
// clock snapshot. Once per generation each is what the runtime writes; what
// to make of a second one is up to the caller.
type SyncEvent struct {
	Type byte // EvFrequency or EvClockSnapshot

	// Freq is the trace clock's frequency in units per second, never 0
	// (EvFrequency).
	Freq uint64

	// The clock snapshot (EvClockSnapshot): the trace clock as an offset
	// from the batch's base timestamp, and the wall clock read with it,
	// in seconds and nanoseconds since the Unix epoch, unchecked. The
	// snapshot's monotonic clock reading is skipped.
	Dt, Sec, Nsec uint64
}

// ReadSyncEvent reads the event at b[p] of a sync batch's payload b, whose
// first byte is EvSync, and returns the offset just past it. A caller walks
// the batch with
//
//	for p := 1; p < len(b); {
//		ev, p, err = ReadSyncEvent(b, p)
//		...
//	}
func ReadSyncEvent(b []byte, p int) (ev SyncEvent, next int, err error) {
	if p < 0 || p >= len(b) {
		return ev, -1, fmt.Errorf("no event at %d of %d bytes", p, len(b))
	}
	ev.Type = b[p]
	p++
	switch ev.Type {
	case EvFrequency:
		if ev.Freq, p = Uvarint(b, p); p < 0 || ev.Freq == 0 {
			return ev, -1, errBadFrequency
		}
	case EvClockSnapshot:
		ev.Dt, p = Uvarint(b, p)
		p = SkipUvarint(b, p) // monotonic clock
		ev.Sec, p = Uvarint(b, p)
		ev.Nsec, p = Uvarint(b, p)
		if p < 0 {
			return ev, -1, errBadSnapshot
		}
	default:
		return ev, -1, fmt.Errorf("unexpected event type %d", ev.Type)
	}
	return ev, p, nil
}

var (
	errBadFrequency = errors.New("bad frequency")
	errBadSnapshot  = errors.New("bad clock snapshot")
)
