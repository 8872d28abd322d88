package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// Service names of the two services, as Jaeger lists them.
const (
	ordersService    = "demo-orders"
	inventoryService = "demo-inventory"
)

// The adaptive latency trigger's settings: a span is anomalous when it
// lasts more than adaptiveFactor times the recent median of the spans of
// its name, and at least adaptiveFloor, once its name has
// adaptiveMinSamples of them.
//
// The demo compares to the median where a service would keep the library's
// p99: an incident every few seconds slows 5 to 10% of the demo's requests,
// far more than the 1% that a p99 baseline can absorb; the p99 would soon
// be an incident's duration and nothing would stand out. The median stays
// the typical request's until half of them are slow. The floor is the
// library's: an order takes a couple of milliseconds and a reservation a
// fraction of one, so ten times that would catch scheduler hiccups.
const (
	adaptiveQuantile   = 0.5
	adaptiveFactor     = 10
	adaptiveFloor      = spanprocessor.DefaultAdaptiveFloor
	adaptiveMinSamples = spanprocessor.DefaultAdaptiveMinSamples
)

// warmKeys are the span names of the requests incidents strike: incidents
// wait until the adaptive trigger has enough samples of each. GET /catalog,
// a tenth of the load, warms up later; no incident depends on it.
var warmKeys = []string{"POST /orders", "POST /reserve"}

// telemetry is the otelfr setup shared by both services.
type telemetry struct {
	orders, inventory trace.TracerProvider
	proc              *spanprocessor.Processor
	adaptive          bool // the adaptive latency trigger is on
	store             snapstore.Store
	exp               *exporter.Exporter
	exporting         string // says where spans go, for the start-up log
	trigger           string // says what makes a span anomalous, ditto
	shutdown          func()
}

// setupTelemetry starts the flight recorder and builds one anomaly
// processor for both services' tracer providers. The runtime allows one
// flight recorder per process, and one processor coalesces the anomalies
// of a request that crosses both services (the inventory span, the orders
// client and server spans) into a single snapshot, where two processors
// would race for it and one would be rate limited. Each linked anomaly
// also goes to inc's incident log.
func setupTelemetry(ctx context.Context, o options, inc *incidents) (*telemetry, error) {
	instance := newInstanceID()
	ordersRes, err := newResource(ctx, ordersService, instance)
	if err != nil {
		return nil, err
	}
	inventoryRes, err := newResource(ctx, inventoryService, instance)
	if err != nil {
		return nil, err
	}

	// By default a snapshot at most every 2s, so that every incident gets
	// one: a production service would keep the library's 10s.
	rec, err := otelfr.Start(
		otelfr.WithMinInterval(o.minInterval),
		otelfr.WithByteBudget(1<<30, time.Hour),
	)
	if err != nil {
		return nil, err
	}
	// A snapshot covers the whole process, both services: the store
	// records the orders service's resource, the one requests enter by,
	// whose instance and host the inventory service shares.
	store, shutdownStore, err := bucketstore.OpenStore(ctx, o.store, bucketstore.WithResource(ordersRes))
	if err != nil {
		rec.Stop(context.Background())
		return nil, err
	}

	// Without a configured endpoint the OTLP exporter would dial
	// localhost:4317 and report a failure for every batch; the demo then
	// drops spans instead, and the anomaly lines and snapshots remain.
	var (
		spanExp   sdktrace.SpanExporter  // nil: no attachment spans
		next      sdktrace.SpanProcessor = discard{}
		exporting                        = "not exporting spans: set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://localhost:4317) to send them to Jaeger"
	)
	if endpoint := otlpEndpoint(); endpoint != "" {
		otlp, err := otlptracegrpc.New(ctx) // reads OTEL_EXPORTER_OTLP_*
		if err != nil {
			rec.Stop(context.Background())
			_ = shutdownStore(context.Background())
			return nil, err
		}
		spanExp, next = otlp, sdktrace.NewBatchSpanProcessor(otlp)
		exporting = "exporting spans over OTLP/gRPC to " + endpoint
	}
	var expOpts []exporter.Option
	if o.baseURL != "" {
		expOpts = append(expOpts, exporter.WithBaseURL(o.baseURL))
	}
	exp := exporter.New(store, spanExp, expOpts...)

	latency := spanprocessor.WithAdaptiveLatency(
		spanprocessor.AdaptiveQuantile(adaptiveQuantile),
		spanprocessor.AdaptiveFactor(adaptiveFactor),
		spanprocessor.AdaptiveFloor(adaptiveFloor),
		spanprocessor.AdaptiveMinSamples(adaptiveMinSamples),
	)
	trigger := fmt.Sprintf("anomaly trigger: adaptive: a span is anomalous above %d× the median of recent spans of its name, and at least %v, "+
		"once its name has %d samples (incidents wait for that)", adaptiveFactor, adaptiveFloor, adaptiveMinSamples)
	if o.threshold > 0 {
		latency = spanprocessor.WithLatencyThreshold(o.threshold)
		trigger = fmt.Sprintf("anomaly trigger: fixed: a span is anomalous from %v (-latency-threshold)", o.threshold)
	}
	proc := spanprocessor.New(next, rec, exp,
		latency,
		// An incident slows several requests, which end over a second or
		// so: the bystanders first, often the request that caused it last.
		// One snapshot for all of them, rather than one for the first and
		// rate_limited for the rest.
		spanprocessor.WithCoalesceWindow(time.Second),
		spanprocessor.WithDiagnoser(analysis.NewDiagnoser()),
		spanprocessor.WithOnAnomaly(func(o spanprocessor.Outcome) {
			logAnomaly(o)
			inc.logSpan(o)
		}),
	)
	ordersTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc), sdktrace.WithResource(ordersRes))
	inventoryTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc), sdktrace.WithResource(inventoryRes))
	otel.SetTextMapPropagator(propagation.TraceContext{})

	return &telemetry{
		orders:    otelfr.WrapTracerProvider(ordersTP),
		inventory: otelfr.WrapTracerProvider(inventoryTP),
		proc:      proc,
		adaptive:  o.threshold <= 0,
		store:     store,
		exp:       exp,
		exporting: exporting,
		trigger:   trigger,
		shutdown: func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// Both providers share proc: the first Shutdown handles the
			// anomalies still queued, flushes and shuts it down; the
			// second returns the same result.
			for _, tp := range []*sdktrace.TracerProvider{ordersTP, inventoryTP} {
				if err := tp.Shutdown(ctx); err != nil {
					log.Printf("shutting down tracing: %v", err)
				}
			}
			// The recorder stops after the processor that uses it.
			if err := rec.Stop(ctx); err != nil {
				log.Printf("stopping the flight recorder: %v", err)
			}
			// The store last: the snapshots that the processor was still
			// saving have reached it; a bucket's spool then uploads what
			// it holds, within its own deadline, and keeps the rest for
			// the next start.
			storeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := shutdownStore(storeCtx); err != nil {
				log.Printf("shutting down the store: %v", err)
			}
		},
	}, nil
}

// newResource describes one of the demo's services, run by the process
// instance: its service.instance.id and host.name tell the replicas of a
// fleet apart, in Jaeger and in a shared bucket's viewer.
// OTEL_RESOURCE_ATTRIBUTES adds to it and wins over both (a replica named
// by its deployment keeps that name), but the service name and namespace
// are the demo's: one process plays two services.
func newResource(ctx context.Context, service, instance string) (*resource.Resource, error) {
	return resource.New(ctx,
		resource.WithAttributes(attribute.String("service.instance.id", instance)),
		resource.WithHost(),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(
			attribute.String("service.name", service),
			attribute.String("service.namespace", "otelfr-demo"),
		))
}

// newInstanceID returns a random UUID (version 4), the form the semantic
// conventions recommend for a service.instance.id that nothing else names:
// unique to this run of the process, shared by its two services.
func newInstanceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])  // never fails
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // the RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// otlpEndpoint returns the OTLP endpoint the environment configures for
// traces, or "".
func otlpEndpoint() string {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}

// discard is the processor the anomaly processor wraps when spans are not
// exported: it drops them.
type discard struct{}

func (discard) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (discard) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (discard) Shutdown(context.Context) error                  { return nil }
func (discard) ForceFlush(context.Context) error                { return nil }

// warmUp waits until the adaptive trigger has enough samples of every
// name in warmKeys, and logs their medians and the durations that would
// make them anomalous. It returns false if ctx ends first, and true at once
// when the trigger is fixed.
func (t *telemetry) warmUp(ctx context.Context) bool {
	if !t.adaptive {
		return true
	}
	log.Printf("adaptive trigger: warming up on the load's first requests; incidents start once %s have %d samples each",
		strings.Join(warmKeys, " and "), adaptiveMinSamples)
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var medians []string
		for _, k := range warmKeys {
			if m, ok := t.proc.Quantile(k); ok {
				th := time.Duration(adaptiveFactor * float64(m))
				medians = append(medians, fmt.Sprintf("%s median %v, anomalous above %v",
					k, m.Round(10*time.Microsecond), max(th, adaptiveFloor).Round(10*time.Microsecond)))
			}
		}
		if len(medians) == len(warmKeys) {
			log.Printf("adaptive trigger: warm after %v: %s", time.Since(start).Round(100*time.Millisecond), strings.Join(medians, "; "))
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// logAnomaly prints one line per anomalous span: its service and name, how
// long it took, why it is anomalous, the incidents in progress while it
// ran, the diagnosis's verdict, and its snapshot's URL (last, so that it is
// easy to pick out) or why it has none.
func logAnomaly(o spanprocessor.Outcome) {
	s := o.Span
	service, _ := s.Resource().Set().Value("service.name")
	why := o.Reason
	for _, kv := range s.Attributes() {
		if kv.Key == incidentsKey {
			why += fmt.Sprintf("; incidents: %v", kv.Value.AsStringSlice())
		}
	}
	line := fmt.Sprintf("anomaly: %s %q %v (%s)",
		service.AsString(), s.Name(), s.EndTime().Sub(s.StartTime()).Round(time.Millisecond), why)
	sc := s.SpanContext()
	if o.Skipped != "" {
		log.Printf("%s trace %s: no snapshot: %s", line, sc.TraceID(), o.Skipped)
		return
	}
	verdict := o.Verdict
	if verdict == "" {
		verdict = "none" // the diagnosis failed: its error went to otel.Handle
	}
	log.Printf("%s verdict: %s; trace %s: snapshot %s", line, verdict, sc.TraceID(), o.SnapshotURL)
}
