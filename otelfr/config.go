package otelfr

import (
	"fmt"
	"os"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
)

// Environment variables read by [Start]. An explicit option overrides them.
const (
	EnvMinAge       = "OTELFR_MIN_AGE"
	EnvMaxBytes     = "OTELFR_MAX_BYTES"
	EnvMinInterval  = "OTELFR_MIN_INTERVAL"
	EnvByteBudget   = "OTELFR_BYTE_BUDGET"
	EnvBudgetPeriod = "OTELFR_BUDGET_PERIOD"
	EnvDiskDir      = "OTELFR_DISK_DIR"
)

// Defaults used by [Start] when neither an option nor the environment sets a value.
const (
	DefaultMinAge       = 10 * time.Second
	DefaultMaxBytes     = 16 << 20
	DefaultMinInterval  = 10 * time.Second
	DefaultByteBudget   = 256 << 20
	DefaultBudgetPeriod = time.Hour
	DefaultDiskMaxAge   = 10 * time.Minute
	DefaultDiskMaxBytes = 512 << 20
)

type config struct {
	minAge       time.Duration
	maxBytes     uint64
	minInterval  time.Duration
	byteBudget   int64
	budgetPeriod time.Duration
	adopt        *trace.FlightRecorder
	diskDir      string
	diskFromEnv  bool // diskDir came from OTELFR_DISK_DIR
	diskMaxAge   time.Duration
	diskMaxBytes int64
}

// Option configures a [Recorder].
type Option interface {
	apply(config) config
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

// WithMinAge sets the minimum age of the events the flight recorder keeps:
// a snapshot reaches back at least this far, unless MaxBytes is reached
// first. The default is 10s; a value <= 0 keeps the default.
func WithMinAge(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d > 0 {
			c.minAge = d
		}
		return c
	})
}

// WithMaxBytes sets the upper bound, in bytes, on the flight recorder's
// window. It takes precedence over MinAge and is a hint to the runtime, not
// a hard limit. The default is 16 MiB; 0 keeps the default.
func WithMaxBytes(n uint64) Option {
	return optionFunc(func(c config) config {
		if n > 0 {
			c.maxBytes = n
		}
		return c
	})
}

// WithMinInterval sets the minimum time between the starts of two snapshots.
// The default is 10s. A value of 0 disables the interval limit; a negative
// value keeps the default.
func WithMinInterval(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d >= 0 {
			c.minInterval = d
		}
		return c
	})
}

// WithByteBudget limits the bytes that snapshots may take in each period:
// once the snapshots taken in the current period add up to n bytes, further
// requests fail with [ErrRateLimited] until the period ends. The default is
// 256 MiB per hour. n == 0 disables the budget; negative n or a period <= 0
// keeps the default for that value.
func WithByteBudget(n int64, period time.Duration) Option {
	return optionFunc(func(c config) config {
		if n >= 0 {
			c.byteBudget = n
		}
		if period > 0 {
			c.budgetPeriod = period
		}
		return c
	})
}

// WithFlightRecorder makes the Recorder adopt fr, a flight recorder the
// application has already started, instead of starting its own. The
// application keeps ownership: [Recorder.Stop] does not stop fr, and the
// window options (MinAge, MaxBytes) are ignored. fr must be running when
// [Start] is called.
func WithFlightRecorder(fr *trace.FlightRecorder) Option {
	return optionFunc(func(c config) config {
		c.adopt = fr
		return c
	})
}

// WithDisk turns on disk mode: the Recorder streams the execution trace
// into a ring of segment files in dir, one per trace generation (about a
// second each), instead of keeping its window in memory, and looks there
// for the ring of a process that did not stop cleanly (see
// [Recorder.WriteCrashSnapshot]). dir is created if need be; one process
// at a time may use it. It overrides the OTELFR_DISK_DIR environment
// variable; the empty string keeps the memory ring, the default. [Start]
// fails when dir cannot be used (ErrDiskInUse, a permission error); a
// directory named by OTELFR_DISK_DIR that cannot be used is reported to
// otel.Handle instead, and the memory ring kept.
//
// Only a Recorder that is stopped ([Recorder.Stop]) marks its ring as left
// cleanly: a process that exits without stopping it (returning from main,
// os.Exit, an unhandled SIGTERM) is taken for a crash at the next start.
//
// In disk mode a snapshot is read from the ring: MinAge and MaxBytes bound
// it as they bound the memory ring's window, and may reach as far back as
// the ring does ([WithDiskBounds]). The process's crash output
// ([runtime/debug.SetCrashOutput], which the Recorder owns from Start to
// Stop, replacing any the program set) goes to a file in dir. Disk mode needs
// runtime/trace.Start, which only one caller in a process may use, and
// is ignored, with an error to otel.Handle, beside [WithFlightRecorder].
func WithDisk(dir string) Option {
	return optionFunc(func(c config) config {
		c.diskDir, c.diskFromEnv = dir, false
		return c
	})
}

// WithDiskBounds bounds the disk ring ([WithDisk]) by age and by bytes:
// the oldest segments are removed, whole, once the ring holds more than
// maxBytes or they ended more than maxAge ago; the newest is always kept.
// The defaults are 10 minutes and 512 MiB; a value <= 0 keeps the default.
func WithDiskBounds(maxAge time.Duration, maxBytes int64) Option {
	return optionFunc(func(c config) config {
		if maxAge > 0 {
			c.diskMaxAge = maxAge
		}
		if maxBytes > 0 {
			c.diskMaxBytes = maxBytes
		}
		return c
	})
}

func newConfig(opts []Option) config {
	c := config{
		minAge:       DefaultMinAge,
		maxBytes:     DefaultMaxBytes,
		minInterval:  DefaultMinInterval,
		byteBudget:   DefaultByteBudget,
		budgetPeriod: DefaultBudgetPeriod,
		diskMaxAge:   DefaultDiskMaxAge,
		diskMaxBytes: DefaultDiskMaxBytes,
	}
	c = c.fromEnv(os.LookupEnv)
	for _, o := range opts {
		c = o.apply(c)
	}
	return c
}

// fromEnv applies the environment variables that are set. A malformed value
// is reported to otel.Handle and leaves the current value in place.
func (c config) fromEnv(lookup func(string) (string, bool)) config {
	duration := func(key string, dst *time.Duration, allowZero bool) {
		v, ok := lookup(key)
		if !ok || v == "" {
			return
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err == nil && (d < 0 || (d == 0 && !allowZero)) {
			err = fmt.Errorf("out of range")
		}
		if err != nil {
			otel.Handle(fmt.Errorf("otelfr: %s=%q: %w; using %v", key, v, err, *dst))
			return
		}
		*dst = d
	}
	size := func(key string, dst *int64, allowZero bool) {
		v, ok := lookup(key)
		if !ok || v == "" {
			return
		}
		n, err := parseSize(v)
		if err == nil && n == 0 && !allowZero {
			err = fmt.Errorf("out of range")
		}
		if err != nil {
			otel.Handle(fmt.Errorf("otelfr: %s=%q: %w; using %d", key, v, err, *dst))
			return
		}
		*dst = n
	}
	duration(EnvMinAge, &c.minAge, false)
	maxBytes := int64(c.maxBytes)
	size(EnvMaxBytes, &maxBytes, false)
	c.maxBytes = uint64(maxBytes)
	duration(EnvMinInterval, &c.minInterval, true)
	size(EnvByteBudget, &c.byteBudget, true)
	duration(EnvBudgetPeriod, &c.budgetPeriod, false)
	if v, ok := lookup(EnvDiskDir); ok {
		c.diskDir = strings.TrimSpace(v)
		c.diskFromEnv = c.diskDir != ""
	}
	return c
}

// parseSize parses a byte size: a non-negative integer with an optional
// unit suffix B, KiB, MiB or GiB (also K, M, G; all binary multiples).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	if n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q out of range", s)
	}
	return n * mult, nil
}
