package spanprocessor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func testAdaptive(opts ...AdaptiveOption) *adaptive {
	var c config
	c = WithAdaptiveLatency(opts...).apply(c)
	return newAdaptive(*c.adaptive)
}

// spanAt is a span of the given name and duration ending at end.
func spanAt(name string, end time.Time, d time.Duration) sdktrace.ReadOnlySpan {
	return tracetest.SpanStub{Name: name, StartTime: end.Add(-d), EndTime: end}.Snapshot()
}

func exactQuantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(math.Ceil(q*float64(len(s))))-1]
}

// feed observes ds as spans of key, spread evenly over one window starting
// at from, and returns how many were anomalous.
func feed(a *adaptive, key string, from time.Time, ds []time.Duration) int {
	fired := 0
	step := a.cfg.window / time.Duration(len(ds)+1)
	for i, d := range ds {
		if a.observe(spanAt(key, from.Add(time.Duration(i+1)*step), d), "") {
			fired++
		}
	}
	return fired
}

func (a *adaptive) estimate(key string) time.Duration {
	e := (*a.keys.Load())[key]
	return time.Duration(float64(e.compute(e.epoch.Load(), a.cfg)) / a.cfg.factor)
}

func TestAdaptiveQuantileAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lognormal := func(median time.Duration, sigma float64) time.Duration {
		return time.Duration(float64(median) * math.Exp(sigma*rng.NormFloat64()))
	}
	dists := map[string]func() time.Duration{
		"lognormal": func() time.Duration { return lognormal(5*time.Millisecond, 0.5) },
		"bimodal": func() time.Duration {
			if rng.Float64() < 0.03 {
				return lognormal(100*time.Millisecond, 0.1)
			}
			return lognormal(5*time.Millisecond, 0.2)
		},
		"heavy tail": func() time.Duration { return lognormal(time.Millisecond, 1.5) },
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			for _, q := range []float64{0.5, 0.9, 0.99} {
				a := testAdaptive(AdaptiveQuantile(q))
				ds := make([]time.Duration, 20000)
				for i := range ds {
					ds[i] = gen()
				}
				feed(a, name, a.start, ds)
				want := exactQuantile(ds, q)
				got := a.estimate(name)
				t.Logf("q=%.2f exact %v estimate %v (%+.1f%%)", q, want, got, 100*(float64(got)/float64(want)-1))
				assert.InEpsilon(t, float64(want), float64(got), 0.05, "q=%v", q)
			}
		})
	}
}

func TestAdaptiveFollowsStepChange(t *testing.T) {
	a := testAdaptive()
	ds := func(d time.Duration) []time.Duration {
		out := make([]time.Duration, 1000)
		for i := range out {
			out[i] = d + time.Duration(i%10)*d/100
		}
		return out
	}
	w := a.cfg.window
	feed(a, "k", a.start, ds(5*time.Millisecond))
	assert.InEpsilon(t, float64(5*time.Millisecond*109/100), float64(a.estimate("k")), 0.05)

	// The step change fires at first, then becomes the new normal.
	fired := feed(a, "k", a.start.Add(w), ds(50*time.Millisecond))
	assert.Positive(t, fired)
	feed(a, "k", a.start.Add(2*w), ds(50*time.Millisecond))
	assert.InEpsilon(t, float64(50*time.Millisecond*109/100), float64(a.estimate("k")), 0.05)
	assert.Zero(t, feed(a, "k", a.start.Add(3*w), ds(50*time.Millisecond)), "the new level is normal")

	// After a long idle time the old estimate is forgotten.
	feed(a, "k", a.start.Add(10*w), ds(time.Millisecond)[:10])
	assert.Zero(t, a.estimate("k"), "too few samples in the recent windows")
}

func TestAdaptiveWarmUpAndFloor(t *testing.T) {
	a := testAdaptive(AdaptiveMinSamples(100), AdaptiveFloor(20*time.Millisecond))
	end := a.start
	for i := range 99 {
		end = end.Add(time.Millisecond)
		require.False(t, a.observe(spanAt("k", end, time.Millisecond), ""), "warming up: sample %d", i)
	}
	assert.False(t, a.observe(spanAt("k", end, time.Second), ""), "still warming up: the estimate is refreshed every 16 samples")
	for range 50 {
		end = end.Add(time.Millisecond)
		a.observe(spanAt("k", end, time.Millisecond), "")
	}
	assert.False(t, a.observe(spanAt("k", end, 10*time.Millisecond), ""), "10× the p99, but under the floor")
	assert.True(t, a.observe(spanAt("k", end, 25*time.Millisecond), ""), "over the floor and the factor")
}

func TestAdaptiveRoutes(t *testing.T) {
	// A route that is normally 5ms and sometimes 50ms fires; a route that
	// is always 500ms never does.
	rng := rand.New(rand.NewPCG(3, 4))
	a := testAdaptive()
	end := a.start
	var firedFast, firedSlow, spikes int
	for i := range 5000 {
		end = end.Add(5 * time.Millisecond)
		d := time.Duration(float64(5*time.Millisecond) * math.Exp(0.2*rng.NormFloat64()))
		spike := i > 200 && i%700 == 0
		if spike {
			d = 50 * time.Millisecond
			spikes++
		}
		if a.observe(spanAt("GET /fast", end, d), "") {
			firedFast++
			assert.True(t, spike, "only spikes fire (sample %d, %v)", i, d)
		}
		slow := time.Duration(float64(500*time.Millisecond) * (1 + 0.05*rng.NormFloat64()))
		if a.observe(spanAt("GET /report", end, slow), "") {
			firedSlow++
		}
	}
	assert.Equal(t, spikes, firedFast)
	assert.Zero(t, firedSlow)
}

func TestAdaptiveKeyCap(t *testing.T) {
	a := testAdaptive(AdaptiveMaxKeys(2))
	end := a.start
	for i := range 5 {
		a.observe(spanAt(fmt.Sprint("k", i), end, time.Millisecond), "")
	}
	assert.Len(t, *a.keys.Load(), 2)
	assert.Equal(t, uint32(3), a.overflow.samples.Load(), "keys beyond the cap share the overflow estimate")
}

func TestAdaptiveObserveDoesNotAllocate(t *testing.T) {
	a := testAdaptive()
	s := spanAt("k", a.start.Add(time.Second), time.Millisecond)
	a.observe(s, "")
	assert.Zero(t, testing.AllocsPerRun(1000, func() { a.observe(s, "") }))
}

func TestBucketBounds(t *testing.T) {
	for _, d := range []time.Duration{0, 500, 1024, 1500, time.Millisecond, 7 * time.Millisecond, time.Second, time.Hour} {
		b := bucketOf(d)
		lo, hi := bucketBounds(b)
		if b > 0 && b < numBuckets-1 {
			assert.True(t, float64(d) >= lo && float64(d) < hi, "%v in [%v, %v)", d, lo, hi)
		}
	}
	assert.Equal(t, numBuckets-1, bucketOf(time.Duration(math.MaxInt64)))
}
