// Command grpc is otelfr on a gRPC service: a Stock service and a client
// of it in one program, both instrumented with otelgrpc's stats handlers.
// The client looks four items up in turn, again and again: one is answered
// at once; one waits on a mutex that a refresh holds, which the latency
// trigger snapshots and the verdict explains, on the server span and on
// the client span; one is NotFound, a client's mistake and no anomaly; one
// fails with Unavailable, which the gRPC status-code trigger snapshots.
//
//	go run ./examples/grpc    # logs each anomaly with its snapshot's URL
//
// Spans go over OTLP to the collector that the standard OTEL_EXPORTER_OTLP_*
// variables name: OTLP/gRPC to localhost:4317 by default, OTLP/HTTP with
// OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf (localhost:4318 by default).
// With no collector reachable, snapshots are still stored and served.
//
// Snapshots go to the store that -store names, by default $OTELFR_STORE,
// else $TMPDIR/otelfr-grpc: a directory, or a bucket URL such as
// s3://BUCKET?region=REGION or file:///DIR (see package
// snapstore/bucketstore). The viewer serves from the same store.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	_ "gocloud.dev/blob/fileblob" // file:// stores
	_ "gocloud.dev/blob/s3blob"   // s3:// stores
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

type config struct {
	addr     string        // the gRPC service's address
	snapAddr string        // the snapshot viewer's address
	store    string        // where snapshots are kept: a directory or a bucket URL
	every    time.Duration // the pause between two of the client's calls
	rounds   int           // rounds of lookups before run returns; 0: until ctx ends
}

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:9090", "address of the gRPC service")
	flag.StringVar(&cfg.snapAddr, "snapshot-addr", "127.0.0.1:8082", "address of the snapshot viewer")
	flag.StringVar(&cfg.store, "store", cmp.Or(os.Getenv(bucketstore.EnvStore), bucketstore.DefaultDir("grpc")),
		"where snapshots are kept: a directory or a bucket URL (default $"+bucketstore.EnvStore+")")
	flag.DurationVar(&cfg.every, "every", time.Second, "pause between the client's calls")
	flag.IntVar(&cfg.rounds, "rounds", 0, "rounds of the four lookups before exiting (0: until interrupted)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Fatal(err)
	}
}

// minInterval is the least time between two snapshots. The client's
// default pause of a second puts the failing call two seconds after the
// slow one, so that each gets its own snapshot.
const minInterval = time.Second

func run(ctx context.Context, cfg config) (err error) {
	// The otelfr setup, as in the quickstart, with the exporter the
	// environment chooses.
	rec, err := otelfr.Start(otelfr.WithMinInterval(minInterval))
	if err != nil {
		return err
	}
	defer rec.Stop(context.Background())
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "grpc-example")),
		resource.WithFromEnv())
	if err != nil {
		return err
	}
	store, shutdownStore, err := bucketstore.OpenStore(ctx, cfg.store, bucketstore.WithResource(res))
	if err != nil {
		return err
	}
	// Deferred before the tracer provider's shutdown, so that it runs
	// after it: the snapshots still being saved reach the store, then a
	// bucket's spool is drained.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if serr := shutdownStore(ctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("shutting down the store: %w", serr))
		}
	}()
	otlp, protocol, err := newSpanExporter(ctx)
	if err != nil {
		return err
	}
	proc := spanprocessor.New(
		sdktrace.NewBatchSpanProcessor(otlp),
		rec,
		exporter.New(store, otlp, exporter.WithBaseURL("http://"+cfg.snapAddr+"/snapshots/")),
		spanprocessor.WithLatencyThreshold(100*time.Millisecond),
		// otelgrpc marks a client span Error for any code but OK, NotFound
		// included: without ErrorStatus, the gRPC status-code condition
		// decides, with one set of server-error codes for both sides.
		spanprocessor.WithErrorConditions(spanprocessor.DefaultErrorConditions&^spanprocessor.ErrorStatus),
		spanprocessor.WithDiagnoser(analysis.NewDiagnoser()),
		spanprocessor.WithOnAnomaly(logAnomaly),
	)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc), sdktrace.WithResource(res))
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if serr := tp.Shutdown(ctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("shutting down tracing: %w", serr))
		}
	}()
	// The handlers get the provider and the propagator explicitly; a
	// program that sets them globally (otel.SetTracerProvider,
	// otel.SetTextMapPropagator) can leave these options out.
	traced := []otelgrpc.Option{
		otelgrpc.WithTracerProvider(otelfr.WrapTracerProvider(tp)), // ties goroutines to spans
		otelgrpc.WithPropagators(propagation.TraceContext{}),
	}

	lis, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	srv := grpc.NewServer(grpc.StatsHandler(otelgrpc.NewServerHandler(traced...)))
	srv.RegisterService(&stockDesc, &stock{})
	served := make(chan error, 2)
	go func() { served <- srv.Serve(lis) }()
	defer stopGRPC(srv)

	mux := http.NewServeMux()
	mux.Handle("/snapshots/", http.StripPrefix("/snapshots", viewer.NewHandler(store)))
	snapSrv := &http.Server{Addr: cfg.snapAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: time.Minute}
	go func() { served <- snapSrv.ListenAndServe() }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if serr := snapSrv.Shutdown(ctx); serr != nil {
			err = errors.Join(err, serr)
		}
	}()

	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(traced...)))
	if err != nil {
		return err
	}
	defer conn.Close()

	log.Printf("Stock service on %s, spans exported over %s; snapshots in %s, served on http://%s/snapshots/",
		lis.Addr(), protocol, cfg.store, cfg.snapAddr)
	clientCtx, stopClient := context.WithCancel(ctx)
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		callLoop(clientCtx, conn, cfg)
	}()
	select {
	case <-clientDone:
	case err = <-served: // a server failed: stop the client too
	}
	stopClient()
	<-clientDone
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// callLoop looks each item up in turn, cfg.every apart, for cfg.rounds
// rounds or until ctx ends.
func callLoop(ctx context.Context, conn *grpc.ClientConn, cfg config) {
	items := []string{itemFresh, itemStale, itemUnlisted, itemRemote}
	for i := 0; cfg.rounds == 0 || i < cfg.rounds*len(items); i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(cfg.every):
			}
		}
		item := items[i%len(items)]
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		got, err := lookup(callCtx, conn, item)
		cancel()
		if err != nil {
			got = status.Code(err).String() + ": " + status.Convert(err).Message()
		}
		log.Printf("lookup %s: %v: %s", item, time.Since(start).Round(time.Millisecond), got)
	}
}

// stopGRPC stops srv gracefully, forcibly after 5s.
func stopGRPC(srv *grpc.Server) {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		srv.GracefulStop()
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		srv.Stop()
		<-stopped
	}
}

// Environment variables that choose the OTLP protocol, the second winning
// over the first; each exporter reads the other OTEL_EXPORTER_OTLP_*
// variables itself.
const (
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
)

// newSpanExporter returns the OTLP exporter the environment chooses:
// OTLP/gRPC for "grpc" or nothing (as the quickstart, though the
// specification's default is http/protobuf), OTLP/HTTP for "http/protobuf"
// or "http/json". It also returns the protocol, for the log.
func newSpanExporter(ctx context.Context) (sdktrace.SpanExporter, string, error) {
	key, protocol := "", "grpc"
	for _, k := range []string{envProtocol, envTracesProtocol} {
		if v := strings.TrimSpace(os.Getenv(k)); v != "" {
			key, protocol = k, v
		}
	}
	switch protocol {
	case "grpc":
		exp, err := otlptracegrpc.New(ctx)
		return exp, "OTLP/gRPC", err
	case "http/protobuf", "http/json":
		exp, err := otlptracehttp.New(ctx)
		return exp, "OTLP/HTTP (" + strings.TrimPrefix(protocol, "http/") + ")", err
	}
	return nil, "", fmt.Errorf("%s=%q: want grpc, http/protobuf or http/json", key, protocol)
}

func logAnomaly(o spanprocessor.Outcome) {
	kind := o.Span.SpanKind()
	if o.Skipped != "" {
		log.Printf("anomaly: %s span %q trace %s (%s): no snapshot: %s",
			kind, o.Span.Name(), o.Span.SpanContext().TraceID(), o.Reason, o.Skipped)
		return
	}
	log.Printf("anomaly: %s span %q trace %s (%s): %s\n\tsnapshot %s",
		kind, o.Span.Name(), o.Span.SpanContext().TraceID(), o.Reason, o.Verdict, o.SnapshotURL)
}
