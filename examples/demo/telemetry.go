package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// Service names of the two services, as Jaeger lists them.
const (
	ordersService    = "demo-orders"
	inventoryService = "demo-inventory"
)

// telemetry is the otelfr setup shared by both services.
type telemetry struct {
	orders, inventory trace.TracerProvider
	store             *exporter.DirStore
	exp               *exporter.Exporter
	exporting         string // says where spans go, for the start-up log
	shutdown          func()
}

// setupTelemetry starts the flight recorder and builds one anomaly
// processor for both services' tracer providers. The runtime allows one
// flight recorder per process, and one processor coalesces the anomalies
// of a request that crosses both services (the inventory span, the orders
// client and server spans) into a single snapshot, where two processors
// would race for it and one would be rate limited.
func setupTelemetry(ctx context.Context, o options) (*telemetry, error) {
	ordersRes, err := newResource(ctx, ordersService)
	if err != nil {
		return nil, err
	}
	inventoryRes, err := newResource(ctx, inventoryService)
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
	store, err := exporter.NewDirStore(o.dir)
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
	proc := spanprocessor.New(next, rec, exp,
		spanprocessor.WithLatencyThreshold(o.threshold),
		// An incident slows several requests, which end over a second or
		// so: the bystanders first, often the request that caused it last.
		// One snapshot for all of them, rather than one for the first and
		// rate_limited for the rest.
		spanprocessor.WithCoalesceWindow(time.Second),
		spanprocessor.WithOnAnomaly(logAnomaly),
	)
	ordersTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc), sdktrace.WithResource(ordersRes))
	inventoryTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc), sdktrace.WithResource(inventoryRes))
	otel.SetTextMapPropagator(propagation.TraceContext{})

	return &telemetry{
		orders:    otelfr.WrapTracerProvider(ordersTP),
		inventory: otelfr.WrapTracerProvider(inventoryTP),
		store:     store,
		exp:       exp,
		exporting: exporting,
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
		},
	}, nil
}

// newResource describes one of the demo's services. OTEL_RESOURCE_ATTRIBUTES
// adds to it, but the service name is the demo's: one process plays two
// services.
func newResource(ctx context.Context, service string) (*resource.Resource, error) {
	return resource.New(ctx,
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(
			attribute.String("service.name", service),
			attribute.String("service.namespace", "otelfr-demo"),
		))
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

// logAnomaly prints one line per anomalous span: its service and name, how
// long it took, why it is anomalous, the incidents in progress while it
// ran, and its snapshot's URL or why it has none.
func logAnomaly(o spanprocessor.Outcome) {
	s := o.Span
	service, _ := s.Resource().Set().Value("service.name")
	why := o.Reason
	for _, kv := range s.Attributes() {
		if kv.Key == incidentsKey {
			why += fmt.Sprintf("; incidents: %v", kv.Value.AsStringSlice())
		}
	}
	line := fmt.Sprintf("anomaly: %s %q %v (%s) trace %s",
		service.AsString(), s.Name(), s.EndTime().Sub(s.StartTime()).Round(time.Millisecond), why, s.SpanContext().TraceID())
	if o.Skipped != "" {
		log.Printf("%s: no snapshot: %s", line, o.Skipped)
		return
	}
	log.Printf("%s: snapshot %s", line, o.SnapshotURL)
}
