package otelfr

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := limiter{minInterval: 10 * time.Second, budget: 100, period: time.Minute}

		require.NoError(t, l.allow(time.Now()))
		l.charge(time.Now(), 40)

		time.Sleep(5 * time.Second)
		require.ErrorIs(t, l.allow(time.Now()), ErrRateLimited, "inside the interval")

		time.Sleep(5 * time.Second)
		require.NoError(t, l.allow(time.Now()), "the interval has passed")
		l.charge(time.Now(), 40)

		time.Sleep(10 * time.Second)
		// 80 used, next estimated at 40: over the budget of 100.
		require.ErrorIs(t, l.allow(time.Now()), ErrByteBudget)

		time.Sleep(time.Minute)
		require.NoError(t, l.allow(time.Now()), "a new period resets the budget")
	})
}

func TestLimiterDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := limiter{}
		for range 5 {
			require.NoError(t, l.allow(time.Now()))
			l.charge(time.Now(), 1<<30)
		}
	})
}

// The limiter charged the minimum interval when allow admitted a snapshot,
// so a snapshot that then failed held up the next one for the interval.
func TestLimiterChargesFailedSnapshots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := limiter{minInterval: 10 * time.Second, budget: 100, period: time.Minute}
		require.NoError(t, l.allow(time.Now()))
		// The snapshot failed: nothing is charged.
		time.Sleep(time.Second)
		require.NoError(t, l.allow(time.Now()), "a failed snapshot does not start the interval")
		l.charge(time.Now(), 40)
		time.Sleep(time.Second)
		require.ErrorIs(t, l.allow(time.Now()), ErrRateLimited, "a stored one does")
	})
}
