package spanprocessor

import (
	"fmt"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Defaults of a [Processor].
const (
	// DefaultLatencyThreshold: a span lasting at least this long is slow.
	DefaultLatencyThreshold = 500 * time.Millisecond
	// DefaultQueueSize bounds the anomalies waiting for the worker.
	DefaultQueueSize = 256
	// DefaultCoalesceWindow is how long the worker waits after an anomaly
	// for others to share its snapshot.
	DefaultCoalesceWindow = 20 * time.Millisecond
	// DefaultDiagnosisTimeout bounds the diagnosis of one span.
	DefaultDiagnosisTimeout = 5 * time.Second
	// DefaultStoreTimeout bounds each of the worker's calls into the store.
	DefaultStoreTimeout = 10 * time.Second
)

// EnvLatencyThreshold names the environment variable that sets the global
// latency threshold ([time.ParseDuration] syntax, "0" disables the latency
// trigger). [WithLatencyThreshold] overrides it.
const EnvLatencyThreshold = "OTELFR_LATENCY_THRESHOLD"

// Predicate decides whether a finished span is anomalous, and why. It runs
// in OnEnd for every span that the built-in triggers did not select, so it
// must be fast and must not block.
type Predicate func(s sdktrace.ReadOnlySpan) (reason string, anomalous bool)

type config struct {
	latency    time.Duration
	perName    map[string]time.Duration
	errorConds ErrorCondition
	grpcCodes  uint32 // bit set of gRPC codes
	predicate  Predicate
	queueSize  int
	coalesce   time.Duration
	onAnomaly  func(Outcome)
	adaptive   *adaptiveConfig
	cooldown   time.Duration
	diagnoser  Diagnoser

	diagnosisTimeout time.Duration
	storeTimeout     time.Duration

	meterProvider metric.MeterProvider
}

// Option configures a [Processor].
type Option interface {
	apply(config) config
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

// WithLatencyThreshold sets the duration at or above which a span is
// anomalous, for spans without a per-name threshold. The default is 500ms,
// or the OTELFR_LATENCY_THRESHOLD environment variable. d == 0 disables the
// global latency trigger; d < 0 keeps the default.
func WithLatencyThreshold(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d >= 0 {
			c.latency = d
		}
		return c
	})
}

// WithSpanNameThreshold sets the latency threshold for spans named name,
// overriding the global one. d == 0 exempts those spans from the latency
// trigger. Later calls for the same name win.
func WithSpanNameThreshold(name string, d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d < 0 {
			return c
		}
		m := make(map[string]time.Duration, len(c.perName)+1)
		for k, v := range c.perName {
			m[k] = v
		}
		m[name] = d
		c.perName = m
		return c
	})
}

// WithPredicate adds a user trigger, consulted for each span the latency
// and error triggers did not select. A nil predicate removes it.
func WithPredicate(p Predicate) Option {
	return optionFunc(func(c config) config {
		c.predicate = p
		return c
	})
}

// WithQueueSize bounds the number of anomalous spans waiting for the
// background worker. When the queue is full an anomalous span is forwarded
// at once, marked as skipped ("queue_full"), and counted. The default is
// 256; n <= 0 keeps the default.
func WithQueueSize(n int) Option {
	return optionFunc(func(c config) config {
		if n > 0 {
			c.queueSize = n
		}
		return c
	})
}

// WithCoalesceWindow sets how long the worker waits, after the first
// anomaly, for others to arrive and share its snapshot. Anomalous spans are
// forwarded to the wrapped processor once their snapshot is stored, so this
// also delays them. The default is 20ms; d < 0 keeps the default.
func WithCoalesceWindow(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d >= 0 {
			c.coalesce = d
		}
		return c
	})
}

// WithOnAnomaly registers f to be told what happened to each anomalous
// span, once it has been forwarded: the snapshot it is linked to, or why it
// has none (and, for a linked span, once it has been diagnosed, if a
// Diagnoser is configured). f runs on the processor's worker goroutines,
// one call at a time (and on the OnEnd caller's goroutine, concurrently,
// for a span skipped because the queue was full); it should return
// quickly: logging a line is fine. A nil f removes it.
func WithOnAnomaly(f func(Outcome)) Option {
	return optionFunc(func(c config) config {
		c.onAnomaly = f
		return c
	})
}

// WithCooldown sets a cooldown per trigger: once anomalies of one span
// name and reason (say, "latency" on "GET /report") got a snapshot, they
// get no new one for d; they are linked to a snapshot taken for another
// trigger if it covers them, and otherwise marked skipped ("cooldown").
// This keeps one noisy route from using up the snapshot budget of the
// others. The default, 0, disables it.
func WithCooldown(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d >= 0 {
			c.cooldown = d
		}
		return c
	})
}

// WithDiagnoser wires in a [Diagnoser] that explains each linked span from
// its snapshot, on the attachment span and in the store.
func WithDiagnoser(d Diagnoser) Option {
	return optionFunc(func(c config) config {
		c.diagnoser = d
		return c
	})
}

// WithDiagnosisTimeout bounds the diagnosis of each linked span (see
// [Diagnoser]). A diagnosis still running after d is abandoned: its ctx is
// cancelled, its result dropped, and the span, forwarded already, is
// reported and exported undiagnosed and counted in [Stats].Dropped
// ("diagnosis_timeout"), as are the spans that come while it still runs.
// The default is 5s; d <= 0 keeps the default.
func WithDiagnosisTimeout(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d > 0 {
			c.diagnosisTimeout = d
		}
		return c
	})
}

// WithStoreTimeout bounds each of the worker's calls into the store:
// storing a snapshot (the anomalies it is taken for are skipped, "error",
// when it fails or times out), and, on the export stage, hashing it and
// recording its spans. The snapshot's own stream out of the flight
// recorder, typically milliseconds, is not interrupted. The default is
// 10s; d <= 0 keeps the default.
func WithStoreTimeout(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d > 0 {
			c.storeTimeout = d
		}
		return c
	})
}

// WithMeterProvider sets where the Processor publishes its counters
// (anomalies, snapshots and their bytes, linked and skipped spans by
// reason, failures by stage; see [Processor.Stats]). The default is the
// global MeterProvider, otel.GetMeterProvider().
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c config) config {
		if mp != nil {
			c.meterProvider = mp
		}
		return c
	})
}

func newConfig(opts []Option) config {
	c := config{
		meterProvider: otel.GetMeterProvider(),
		latency:       DefaultLatencyThreshold,
		errorConds:    DefaultErrorConditions,
		grpcCodes:     defaultGRPCErrorCodes,
		queueSize:     DefaultQueueSize,
		coalesce:      DefaultCoalesceWindow,

		diagnosisTimeout: DefaultDiagnosisTimeout,
		storeTimeout:     DefaultStoreTimeout,
	}
	if v, ok := os.LookupEnv(EnvLatencyThreshold); ok && v != "" {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err == nil && d < 0 {
			err = fmt.Errorf("negative duration")
		}
		if err != nil {
			otel.Handle(fmt.Errorf("otelfr/spanprocessor: %s=%q: %w; using %v", EnvLatencyThreshold, v, err, c.latency))
		} else {
			c.latency = d
		}
	}
	for _, o := range opts {
		c = o.apply(c)
	}
	return c
}
