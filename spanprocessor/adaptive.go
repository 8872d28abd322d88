package spanprocessor

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Defaults of the adaptive latency trigger.
const (
	DefaultAdaptiveQuantile   = 0.99
	DefaultAdaptiveFactor     = 2.0
	DefaultAdaptiveFloor      = 10 * time.Millisecond
	DefaultAdaptiveMinSamples = 50
	DefaultAdaptiveWindow     = time.Minute
	DefaultAdaptiveMaxKeys    = 256
)

// ReasonAdaptiveLatency is the reason given by the adaptive latency trigger.
const ReasonAdaptiveLatency = "latency.adaptive"

// OverflowKey is the key under which the adaptive trigger tracks the spans
// of every key beyond the key cap.
const OverflowKey = "otelfr.overflow"

// AdaptiveOption configures the adaptive latency trigger.
type AdaptiveOption interface {
	applyAdaptive(adaptiveConfig) adaptiveConfig
}

type adaptiveConfig struct {
	quantile   float64
	factor     float64
	floor      time.Duration
	minSamples int
	window     time.Duration
	maxKeys    int
	key        func(sdktrace.ReadOnlySpan) string // nil: the span's name
}

type adaptiveOptionFunc func(adaptiveConfig) adaptiveConfig

func (f adaptiveOptionFunc) applyAdaptive(c adaptiveConfig) adaptiveConfig { return f(c) }

// AdaptiveQuantile sets the quantile of the recent durations that a span
// is compared to; the default is 0.99. Values outside (0, 1) are ignored.
func AdaptiveQuantile(q float64) AdaptiveOption {
	return adaptiveOptionFunc(func(c adaptiveConfig) adaptiveConfig {
		if q > 0 && q < 1 {
			c.quantile = q
		}
		return c
	})
}

// AdaptiveFactor sets how many times the quantile a span must last to be
// anomalous; the default is 2. Values below 1 are ignored.
func AdaptiveFactor(f float64) AdaptiveOption {
	return adaptiveOptionFunc(func(c adaptiveConfig) adaptiveConfig {
		if f >= 1 {
			c.factor = f
		}
		return c
	})
}

// AdaptiveFloor sets the duration below which a span is never anomalous,
// however unusual; the default is 10ms. Negative values are ignored.
func AdaptiveFloor(d time.Duration) AdaptiveOption {
	return adaptiveOptionFunc(func(c adaptiveConfig) adaptiveConfig {
		if d >= 0 {
			c.floor = d
		}
		return c
	})
}

// AdaptiveMinSamples sets how many recent spans of a key must have been
// seen before the trigger can fire for it; the default is 50.
func AdaptiveMinSamples(n int) AdaptiveOption {
	return adaptiveOptionFunc(func(c adaptiveConfig) adaptiveConfig {
		if n > 0 {
			c.minSamples = n
		}
		return c
	})
}

// AdaptiveWindow sets how fast the estimate forgets: it covers the spans
// of the current and the previous window, so between one and two windows;
// the default is one minute.
func AdaptiveWindow(d time.Duration) AdaptiveOption {
	return adaptiveOptionFunc(func(c adaptiveConfig) adaptiveConfig {
		if d > 0 {
			c.window = d
		}
		return c
	})
}

// AdaptiveMaxKeys caps the number of keys tracked separately (each costs
// about 3 KiB); the spans of further keys share one estimate under
// [OverflowKey]. The default is 256.
func AdaptiveMaxKeys(n int) AdaptiveOption {
	return adaptiveOptionFunc(func(c adaptiveConfig) adaptiveConfig {
		if n > 0 {
			c.maxKeys = n
		}
		return c
	})
}

// AdaptiveKey sets how spans are grouped: each key has its own estimate.
// The default is the span name, which costs no allocation; a key function
// that builds a string (say, name plus route) allocates on every span.
func AdaptiveKey(f func(sdktrace.ReadOnlySpan) string) AdaptiveOption {
	return adaptiveOptionFunc(func(c adaptiveConfig) adaptiveConfig {
		if f != nil {
			c.key = f
		}
		return c
	})
}

// WithAdaptiveLatency turns on the adaptive latency trigger: a span is
// anomalous when it lasts more than factor × the recent quantile of the
// durations of spans with the same key (by default: more than twice the
// p99 of spans of the same name over the last one to two minutes), at
// least the floor, and once the key has enough samples.
//
// The adaptive trigger replaces the global fixed threshold
// ([WithLatencyThreshold] and OTELFR_LATENCY_THRESHOLD are then ignored);
// per-name thresholds from [WithSpanNameThreshold] still take precedence
// for their names. Each span costs a few atomic operations and no
// allocation with the default key.
func WithAdaptiveLatency(opts ...AdaptiveOption) Option {
	return optionFunc(func(c config) config {
		a := adaptiveConfig{
			quantile:   DefaultAdaptiveQuantile,
			factor:     DefaultAdaptiveFactor,
			floor:      DefaultAdaptiveFloor,
			minSamples: DefaultAdaptiveMinSamples,
			window:     DefaultAdaptiveWindow,
			maxKeys:    DefaultAdaptiveMaxKeys,
		}
		for _, o := range opts {
			a = o.applyAdaptive(a)
		}
		c.adaptive = &a
		return c
	})
}

// Durations are counted in log-scale buckets: 8 per power of two, so a
// bucket spans 9% and a quantile read at its geometric middle is within
// ±4.5% of the exact one. Buckets cover 1µs (2^10ns) to about 18 minutes
// (2^40ns); shorter and longer durations fall in the first and last.
const (
	subBits     = 3
	subBuckets  = 1 << subBits
	minExp      = 10
	maxExp      = 40
	numBuckets  = (maxExp-minExp)*subBuckets + 2
	recomputeAt = 16 // refresh the cached threshold every 16 samples
)

func bucketOf(d time.Duration) int {
	ns := uint64(d)
	if ns < 1<<minExp {
		return 0
	}
	exp := bits.Len64(ns) - 1
	if exp >= maxExp {
		return numBuckets - 1
	}
	sub := int(ns>>(exp-subBits)) & (subBuckets - 1)
	return 1 + (exp-minExp)*subBuckets + sub
}

// bucketBounds returns the duration range of bucket b.
func bucketBounds(b int) (lo, hi float64) {
	switch {
	case b <= 0:
		return 0, 1 << minExp
	case b >= numBuckets-1:
		return 1 << maxExp, 1 << maxExp
	}
	exp := minExp + (b-1)/subBuckets
	sub := (b - 1) % subBuckets
	base := math.Ldexp(1, exp)
	width := base / subBuckets
	return base + float64(sub)*width, base + float64(sub+1)*width
}

type histogram [numBuckets]atomic.Uint32

// estimator tracks one key's recent durations in three rotating
// histograms: the current window, the previous one, and a spare zeroed
// before it becomes current, so that no writer races with the zeroing.
type estimator struct {
	hist      [3]histogram
	epoch     atomic.Int64 // index of the current window since the start
	samples   atomic.Uint32
	threshold atomic.Int64 // cached factor × quantile, in ns; 0 until warm
}

// adaptive is the trigger's state, shared by all goroutines calling OnEnd.
type adaptive struct {
	cfg   adaptiveConfig
	start time.Time

	keys     atomic.Pointer[map[string]*estimator] // copied on write
	mu       sync.Mutex                            // serializes writers of keys
	overflow estimator
}

func newAdaptive(cfg adaptiveConfig) *adaptive {
	a := &adaptive{cfg: cfg, start: time.Now()}
	m := map[string]*estimator{}
	a.keys.Store(&m)
	return a
}

// observe records the span's duration and reports whether it is anomalous
// against the estimate before it. Each accessor of an SDK span copies the
// whole span snapshot, so each is called once.
func (a *adaptive) observe(s sdktrace.ReadOnlySpan, name string) bool {
	end := s.EndTime()
	d := end.Sub(s.StartTime())
	key := name
	switch {
	case a.cfg.key != nil:
		key = a.cfg.key(s)
	case name == "":
		key = s.Name()
	}
	e := a.estimator(key)
	epoch := int64(end.Sub(a.start) / a.cfg.window)
	cur := e.rotate(epoch)

	threshold := time.Duration(e.threshold.Load())
	anomalous := threshold > 0 && d >= a.cfg.floor && d > threshold

	e.hist[cur%3][bucketOf(d)].Add(1)
	if e.samples.Add(1)%recomputeAt == 0 {
		e.threshold.Store(int64(e.compute(cur, a.cfg)))
	}
	return anomalous
}

// estimator returns the key's estimator, creating it while under the cap.
func (a *adaptive) estimator(key string) *estimator {
	if e, ok := (*a.keys.Load())[key]; ok {
		return e
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old := *a.keys.Load()
	if e, ok := old[key]; ok {
		return e
	}
	if len(old) >= a.cfg.maxKeys {
		return &a.overflow
	}
	m := make(map[string]*estimator, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	e := &estimator{}
	m[key] = e
	a.keys.Store(&m)
	return e
}

// rotate moves the estimator to window epoch if it is behind, and returns
// the current epoch. Rotations racing with writers may lose a few counts;
// the estimate is statistical, so that is harmless.
func (e *estimator) rotate(epoch int64) int64 {
	for {
		cur := e.epoch.Load()
		if epoch <= cur {
			return cur
		}
		next := cur + 1
		if epoch > next {
			// Idle for more than a window: the previous window is stale too.
			next = epoch
			e.hist[(next+2)%3].reset()
		}
		// The spare becomes current; zero it before anyone writes to it.
		e.hist[next%3].reset()
		if e.epoch.CompareAndSwap(cur, next) {
			return next
		}
	}
}

func (h *histogram) reset() {
	for i := range h {
		h[i].Store(0)
	}
}

// compute returns factor × the quantile over the current and previous
// windows, or 0 with too few samples.
func (e *estimator) compute(cur int64, cfg adaptiveConfig) time.Duration {
	var counts [numBuckets]uint32
	var total uint64
	for _, h := range []*histogram{&e.hist[cur%3], &e.hist[(cur+2)%3]} {
		for i := range h {
			n := h[i].Load()
			counts[i] += n
			total += uint64(n)
		}
	}
	if total < uint64(cfg.minSamples) {
		return 0
	}
	q := quantile(&counts, total, cfg.quantile)
	return time.Duration(q * cfg.factor)
}

// quantile reads quantile q from bucket counts, at the geometric middle of
// the bucket it falls in.
func quantile(counts *[numBuckets]uint32, total uint64, q float64) float64 {
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, n := range counts {
		seen += uint64(n)
		if seen >= rank {
			lo, hi := bucketBounds(i)
			if lo == 0 {
				return hi / 2
			}
			return math.Sqrt(lo * hi)
		}
	}
	lo, _ := bucketBounds(numBuckets - 1)
	return lo
}

// Quantile reports the adaptive trigger's current estimate of the
// configured quantile for key, and whether the key has enough samples.
func (p *Processor) Quantile(key string) (time.Duration, bool) {
	a := p.adaptive
	if a == nil {
		return 0, false
	}
	e, ok := (*a.keys.Load())[key]
	if !ok {
		if key != OverflowKey {
			return 0, false
		}
		e = &a.overflow
	}
	th := e.compute(e.epoch.Load(), a.cfg)
	return time.Duration(float64(th) / a.cfg.factor), th > 0
}
