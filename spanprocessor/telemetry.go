package spanprocessor

import (
	"context"
	"errors"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// ScopeName is the instrumentation scope of the Processor's metrics.
const ScopeName = "github.com/otelfr/otel-flightrecorder/spanprocessor"

// skipReasons are the values of SnapshotSkippedKey, in counter order.
var skipReasons = [...]string{
	SkipRateLimited,
	SkipByteBudget,
	SkipQueueFull,
	SkipOutsideWindow,
	SkipStopped,
	SkipError,
	SkipCooldown,
}

// Stages at which the background work can fail, in counter order.
const (
	stageSnapshot = iota // taking the snapshot
	stageStore           // storing it
	stageExport          // exporting attachment spans
	numStages
)

var stageNames = [numStages]string{"snapshot", "store", "export"}

// Reasons a stage dropped its work for a linked span, in counter order:
// the values of Stats.Dropped and of otelfr.spans.dropped's reason
// attribute, beside "after_shutdown" and "abandoned".
const (
	dropDiagnosisQueueFull = iota // the diagnosis stage's queue was full
	dropDiagnosisTimeout          // the diagnosis timed out, or an abandoned one still ran
	dropExportQueueFull           // the export stage's queue was full
	numDrops
)

var dropReasons = [numDrops]string{"diagnosis_queue_full", "diagnosis_timeout", "export_queue_full"}

// counters are the Processor's self-telemetry: plain atomics on the paths
// that count, read by Stats and by an observable-instrument callback.
type counters struct {
	anomalies, snapshots, snapshotBytes, linked atomic.Int64
	skipped                                     [len(skipReasons)]atomic.Int64
	errors                                      [numStages]atomic.Int64
	dropped                                     [numDrops]atomic.Int64

	queued               atomic.Int64 // anomalies that entered the queue
	abandoned            atomic.Int64
	droppedAfterShutdown atomic.Int64
	otherSkip            atomic.Int64 // a reason not in skipReasons: never, but never a panic

	causes causeCounts // diagnosed anomalies by cause
}

// skipCounter returns the counter of spans skipped for reason.
func (c *counters) skipCounter(reason string) *atomic.Int64 {
	for i, r := range skipReasons {
		if r == reason {
			return &c.skipped[i]
		}
	}
	return &c.otherSkip
}

// Stats are the Processor's counters since it was created.
type Stats struct {
	// Anomalies is the number of spans a trigger selected.
	Anomalies int64
	// Snapshots is the number of snapshots taken and stored, and
	// SnapshotBytes their total size.
	Snapshots, SnapshotBytes int64
	// Linked is the number of anomalous spans linked to a snapshot.
	Linked int64
	// Skipped counts the anomalous spans forwarded without a snapshot, by
	// reason (the otelfr.Skip* values); reasons that never occurred are
	// absent.
	Skipped map[string]int64
	// Errors counts failures by stage: "snapshot", "store", "export"
	// (attachment spans dropped after the exporter failed or timed out).
	// Stages that never failed are absent.
	Errors map[string]int64
	// Abandoned is the number of anomalous spans that Shutdown gave up on
	// when its ctx ran out: they were queued for the worker and never
	// forwarded. Every anomaly is counted once, in Linked, in Skipped or
	// here.
	Abandoned int64
	// Dropped counts, by reason, the linked spans whose diagnosis or
	// export a stage of the worker dropped rather than fall behind:
	// "diagnosis_queue_full" and "diagnosis_timeout" (the span was
	// reported and exported undiagnosed; see [WithDiagnosisTimeout]),
	// "export_queue_full" (neither recorded in the store nor given an
	// attachment span). The spans themselves were forwarded, linked, and
	// are counted in Linked; a span may be counted under two reasons.
	// Reasons that never occurred are absent.
	Dropped map[string]int64
	// DroppedAfterShutdown is the number of spans, normal or anomalous,
	// handed to OnEnd once Shutdown had begun, and not forwarded. They are
	// not counted in Anomalies.
	DroppedAfterShutdown int64
	// Causes counts the diagnosed anomalies by their diagnosis's cause
	// (see [Diagnoser]): at most 64 causes, the first seen, and the others
	// added under "other".
	Causes map[string]int64
}

// Stats returns the Processor's counters.
func (p *Processor) Stats() Stats {
	s := Stats{
		Anomalies:     p.c.anomalies.Load(),
		Snapshots:     p.c.snapshots.Load(),
		SnapshotBytes: p.c.snapshotBytes.Load(),
		Linked:        p.c.linked.Load(),
		Skipped:       map[string]int64{},
		Errors:        map[string]int64{},
		Dropped:       map[string]int64{},

		Abandoned:            p.c.abandoned.Load(),
		DroppedAfterShutdown: p.c.droppedAfterShutdown.Load(),
		Causes:               p.c.causes.snapshot(),
	}
	for i, r := range skipReasons {
		if n := p.c.skipped[i].Load(); n > 0 {
			s.Skipped[r] = n
		}
	}
	for i, st := range stageNames {
		if n := p.c.errors[i].Load(); n > 0 {
			s.Errors[st] = n
		}
	}
	for i, r := range dropReasons {
		if n := p.c.dropped[i].Load(); n > 0 {
			s.Dropped[r] = n
		}
	}
	return s
}

// registerMetrics publishes the counters as observable instruments, so that
// an operator sees when the tool itself loses data. The hot path pays
// nothing for them.
func (p *Processor) registerMetrics(mp metric.MeterProvider) (metric.Registration, error) {
	m := mp.Meter(ScopeName, metric.WithInstrumentationVersion(otelfr.Version))
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	anomalies := counter("otelfr.anomalies", "{span}", "Spans that a trigger selected as anomalous.")
	snapshots := counter("otelfr.snapshots", "{snapshot}", "Flight-recorder snapshots taken and stored.")
	bytes := counter("otelfr.snapshot.size", "By", "Total size of the snapshots taken.")
	linked := counter("otelfr.spans.linked", "{span}", "Anomalous spans linked to a snapshot.")
	skipped := counter("otelfr.spans.skipped", "{span}", "Anomalous spans forwarded without a snapshot, by reason.")
	failures := counter("otelfr.errors", "{error}", "Failures to take, store or export a snapshot, by stage.")
	dropped := counter("otelfr.spans.dropped", "{span}",
		"Spans never forwarded (after_shutdown, abandoned), and linked spans whose diagnosis or export a stage dropped (diagnosis_queue_full, diagnosis_timeout, export_queue_full).")
	causes := counter("otelfr.causes", "{span}",
		"Diagnosed anomalous spans by cause, the diagnosis's grouping key; at most 64 causes, others under \"other\".")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var reasonAttrs [len(skipReasons)]metric.ObserveOption
	for i, r := range skipReasons {
		reasonAttrs[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", r)))
	}
	var stageAttrs [numStages]metric.ObserveOption
	for i, s := range stageNames {
		stageAttrs[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("stage", s)))
	}
	afterShutdown := metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", "after_shutdown")))
	abandoned := metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", "abandoned")))
	var dropAttrs [numDrops]metric.ObserveOption
	for i, r := range dropReasons {
		dropAttrs[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", r)))
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(anomalies, p.c.anomalies.Load())
		o.ObserveInt64(snapshots, p.c.snapshots.Load())
		o.ObserveInt64(bytes, p.c.snapshotBytes.Load())
		o.ObserveInt64(linked, p.c.linked.Load())
		for i := range skipReasons {
			o.ObserveInt64(skipped, p.c.skipped[i].Load(), reasonAttrs[i])
		}
		for i := range stageNames {
			o.ObserveInt64(failures, p.c.errors[i].Load(), stageAttrs[i])
		}
		o.ObserveInt64(dropped, p.c.droppedAfterShutdown.Load(), afterShutdown)
		o.ObserveInt64(dropped, p.c.abandoned.Load(), abandoned)
		for i := range dropReasons {
			o.ObserveInt64(dropped, p.c.dropped[i].Load(), dropAttrs[i])
		}
		p.c.causes.observe(o, causes)
		return nil
	}, anomalies, snapshots, bytes, linked, skipped, failures, dropped, causes)
}
