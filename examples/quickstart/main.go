// Command quickstart is the smallest complete otelfr setup: an HTTP service
// whose slow requests are snapshotted from the flight recorder, explained,
// stored on disk, served with a viewer on a second port, and linked from
// their spans over OTLP.
//
//	go run ./examples/quickstart
//	curl 127.0.0.1:8080/slow    # logs the snapshot's URL
//
// Spans go to the collector named by the standard OTEL_EXPORTER_OTLP_*
// variables (default localhost:4317); with none reachable, snapshots are
// still stored and served.
//
// Snapshots go to the store that -store names, by default $OTELFR_STORE,
// else $TMPDIR/otelfr-quickstart: a directory, or a bucket URL such as
// s3://BUCKET?region=REGION or file:///DIR (see package
// exporter/bucketstore). The viewer serves from the same store.
package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	_ "gocloud.dev/blob/fileblob" // file:// stores
	_ "gocloud.dev/blob/s3blob"   // s3:// stores

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address of the service")
	snapAddr := flag.String("snapshot-addr", "127.0.0.1:8081", "address of the snapshot handler")
	store := flag.String("store",
		cmp.Or(os.Getenv(bucketstore.EnvStore), bucketstore.DefaultDir("quickstart")),
		"where snapshots are kept: a directory or a bucket URL (default $"+bucketstore.EnvStore+")")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *snapAddr, *store); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr, snapAddr, location string) error {
	// The otelfr setup: recorder, store, OTLP exporter, anomaly processor.
	rec, err := otelfr.Start(otelfr.WithMinInterval(time.Second))
	if err != nil {
		return err
	}
	defer rec.Stop(context.Background())
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "quickstart")),
		resource.WithFromEnv()) // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	if err != nil {
		return err
	}
	store, shutdownStore, err := bucketstore.OpenStore(ctx, location, bucketstore.WithResource(res))
	if err != nil {
		return err
	}
	// Deferred before the tracer provider's shutdown, so that it runs
	// after it: the snapshots still being saved reach the store, then a
	// bucket's spool is drained.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := shutdownStore(ctx); err != nil {
			log.Printf("shutting down the store: %v", err)
		}
	}()
	otlp, err := otlptracegrpc.New(ctx) // reads OTEL_EXPORTER_OTLP_*
	if err != nil {
		return err
	}
	proc := spanprocessor.New(
		sdktrace.NewBatchSpanProcessor(otlp),
		rec,
		exporter.New(store, otlp, exporter.WithBaseURL("http://"+snapAddr+"/snapshots/")),
		spanprocessor.WithLatencyThreshold(100*time.Millisecond),
		spanprocessor.WithDiagnoser(analysis.NewDiagnoser()), // explains each slow span
		spanprocessor.WithOnAnomaly(logAnomaly),
	)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc), sdktrace.WithResource(res))
	otel.SetTracerProvider(otelfr.WrapTracerProvider(tp)) // ties goroutines to spans
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Printf("shutting down tracing: %v", err)
		}
	}()

	snapMux := http.NewServeMux()
	snapMux.Handle("/snapshots/", http.StripPrefix("/snapshots", viewer.NewHandler(store)))
	appMux := http.NewServeMux()
	appMux.HandleFunc("GET /fast", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "fast") })
	appMux.HandleFunc("GET /slow", slow)

	log.Printf("service on http://%s (/fast, /slow); snapshots in %s, served on http://%s/snapshots/", addr, location, snapAddr)
	return serve(ctx,
		newServer(addr, otelhttp.NewHandler(appMux, "http.server")),
		newServer(snapAddr, snapMux),
	)
}

// limits bound what one client, slow or idle, can hold of a server: a
// request's headers must arrive within readHeader and the whole request
// within read; its response must be written within write, a minute, enough
// for a snapshot of tens of MiB on a slow link; a keep-alive connection is
// closed after idle; headers are at most maxHeaderBytes. A variable so that
// the tests can shorten them.
var limits = serverLimits{
	readHeader:     5 * time.Second,
	read:           10 * time.Second,
	write:          time.Minute,
	idle:           time.Minute,
	maxHeaderBytes: 64 << 10,
}

type serverLimits struct {
	readHeader, read, write, idle time.Duration
	maxHeaderBytes                int
}

// newServer returns a server of h on addr, within limits.
func newServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: limits.readHeader,
		ReadTimeout:       limits.read,
		WriteTimeout:      limits.write,
		IdleTimeout:       limits.idle,
		MaxHeaderBytes:    limits.maxHeaderBytes,
	}
}

func logAnomaly(o spanprocessor.Outcome) {
	if o.Skipped != "" {
		log.Printf("anomaly: span %q trace %s (%s): no snapshot: %s",
			o.Span.Name(), o.Span.SpanContext().TraceID(), o.Reason, o.Skipped)
		return
	}
	log.Printf("anomaly: span %q trace %s (%s): %s\n\tsnapshot %s",
		o.Span.Name(), o.Span.SpanContext().TraceID(), o.Reason, o.Verdict, o.SnapshotURL)
}

// inventory is shared state whose refresh holds its lock while it works.
type inventory struct {
	mu     sync.Mutex
	digest [32]byte
}

var stock inventory

// refresh recomputes the inventory for 160ms, holding the lock.
func (inv *inventory) refresh(locked chan<- struct{}) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	close(locked)
	for deadline := time.Now().Add(160 * time.Millisecond); time.Now().Before(deadline); {
		inv.digest = sha256.Sum256(inv.digest[:])
	}
}

// read returns the inventory's digest: it waits for a refresh under way.
func (inv *inventory) read() [32]byte {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.digest
}

// slow starts a refresh of the inventory and then reads it: the read waits
// on the mutex while the refresh works under it.
func slow(w http.ResponseWriter, _ *http.Request) {
	locked := make(chan struct{})
	go stock.refresh(locked)
	<-locked
	d := stock.read()
	fmt.Fprintf(w, "slow %x\n", d[:4])
}

// serve runs the servers until ctx ends or one fails, then shuts them all
// down: requests in flight get 5s to finish, and connections still busy
// then (a client that stopped reading a download, say) are closed.
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
		serr := s.Shutdown(shutdownCtx)
		if errors.Is(serr, context.DeadlineExceeded) {
			log.Printf("closing the connections still busy on %s after 5s", s.Addr)
			serr = s.Close()
		}
		if serr != nil && err == nil {
			err = serr
		}
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
