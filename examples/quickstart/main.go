// Command quickstart is the smallest complete otelfr setup: an HTTP service
// whose slow requests are snapshotted from the flight recorder, stored on
// disk, served on a second port, and linked from their spans over OTLP.
//
//	go run ./examples/quickstart
//	curl 127.0.0.1:8080/slow    # logs the snapshot's URL
//
// Spans go to the collector named by the standard OTEL_EXPORTER_OTLP_*
// variables (default localhost:4317); with none reachable, snapshots are
// still stored and served.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address of the service")
	snapAddr := flag.String("snapshot-addr", "127.0.0.1:8081", "address of the snapshot handler")
	dir := flag.String("dir", filepath.Join(os.TempDir(), "otelfr-quickstart"), "directory for snapshots")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *snapAddr, *dir); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr, snapAddr, dir string) error {
	// The otelfr setup: recorder, store, OTLP exporter, anomaly processor.
	rec, err := otelfr.Start(otelfr.WithMinInterval(time.Second))
	if err != nil {
		return err
	}
	defer rec.Stop(context.Background())
	store, err := exporter.NewDirStore(dir)
	if err != nil {
		return err
	}
	otlp, err := otlptracegrpc.New(ctx) // reads OTEL_EXPORTER_OTLP_*
	if err != nil {
		return err
	}
	proc := spanprocessor.New(
		sdktrace.NewBatchSpanProcessor(otlp),
		rec,
		exporter.New(store, otlp, exporter.WithBaseURL("http://"+snapAddr+"/snapshots/")),
		spanprocessor.WithLatencyThreshold(100*time.Millisecond),
		spanprocessor.WithOnAnomaly(logAnomaly),
	)
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "quickstart")),
		resource.WithFromEnv()) // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Printf("shutting down tracing: %v", err)
		}
	}()

	snapMux := http.NewServeMux()
	snapMux.Handle("/snapshots/", http.StripPrefix("/snapshots", exporter.NewHandler(store)))
	appMux := http.NewServeMux()
	appMux.HandleFunc("GET /fast", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "fast") })
	appMux.HandleFunc("GET /slow", slow)

	log.Printf("service on http://%s (/fast, /slow); snapshots in %s, served on http://%s/snapshots/", addr, dir, snapAddr)
	return serve(ctx,
		&http.Server{Addr: addr, Handler: otelhttp.NewHandler(appMux, "http.server"), ReadHeaderTimeout: 5 * time.Second},
		&http.Server{Addr: snapAddr, Handler: snapMux, ReadHeaderTimeout: 5 * time.Second},
	)
}

func logAnomaly(o spanprocessor.Outcome) {
	if o.Skipped != "" {
		log.Printf("anomaly: span %q trace %s (%s): no snapshot: %s",
			o.Span.Name(), o.Span.SpanContext().TraceID(), o.Reason, o.Skipped)
		return
	}
	log.Printf("anomaly: span %q trace %s (%s): snapshot %s",
		o.Span.Name(), o.Span.SpanContext().TraceID(), o.Reason, o.SnapshotURL)
}

// inventory is shared state whose refresh holds its lock while it works.
var inventory struct {
	mu     sync.Mutex
	digest [32]byte
}

// slow starts a refresh of the inventory and then reads it: the read waits
// on the mutex while the refresh hashes for 160ms under it.
func slow(w http.ResponseWriter, _ *http.Request) {
	started := make(chan struct{})
	go func() {
		inventory.mu.Lock()
		defer inventory.mu.Unlock()
		close(started)
		for deadline := time.Now().Add(160 * time.Millisecond); time.Now().Before(deadline); {
			inventory.digest = sha256.Sum256(inventory.digest[:])
		}
	}()
	<-started
	inventory.mu.Lock()
	d := inventory.digest
	inventory.mu.Unlock()
	fmt.Fprintf(w, "slow %x\n", d[:4])
}

// serve runs the servers until ctx ends or one fails, then shuts them all
// down.
func serve(ctx context.Context, servers ...*http.Server) error {
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errc <- s.ListenAndServe() }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		if serr := s.Shutdown(shutdownCtx); serr != nil && err == nil {
			err = serr
		}
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
