package otelfr

import "time"

// limiter enforces the minimum interval between snapshots and the byte
// budget per period. It is not safe for concurrent use; the Recorder
// guards it with its mutex.
type limiter struct {
	minInterval time.Duration
	budget      int64
	period      time.Duration

	last        time.Time // start of the last admitted snapshot
	periodStart time.Time
	used        int64 // bytes charged in the current period
	lastSize    int64 // size of the last snapshot, the estimate for the next
}

// allow admits a snapshot starting at now, or returns the sentinel error
// saying why not. The budget check uses the previous snapshot's size as the
// estimate of the next one, so a period can overshoot its budget by at most
// the growth of one snapshot over the previous.
func (l *limiter) allow(now time.Time) error {
	if l.minInterval > 0 && !l.last.IsZero() && now.Sub(l.last) < l.minInterval {
		return ErrRateLimited
	}
	if l.budget > 0 {
		if l.periodStart.IsZero() || now.Sub(l.periodStart) >= l.period {
			l.periodStart, l.used = now, 0
		}
		if l.used > 0 && l.used+l.lastSize > l.budget {
			return ErrByteBudget
		}
	}
	return nil
}

// charge records a snapshot that allow admitted at start and that
// succeeded, n bytes long. A snapshot that failed is not charged: neither
// the interval nor the budget holds up the next one.
func (l *limiter) charge(start time.Time, n int64) {
	l.last = start
	l.used += n
	l.lastSize = n
}
