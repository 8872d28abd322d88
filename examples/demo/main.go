// Command demo is an order service worth tracing: an orders API that calls
// a downstream inventory service (a second listener in the same process),
// both instrumented with otelhttp, with the full otelfr setup and a
// built-in load generator. Every few seconds an incident with a real cause
// slows some requests down or makes them fail:
//
//   - lock contention: a catalog refresh holds the price lock;
//   - GC pressure: an order renders a bulk invoice, an allocation burst;
//   - a slow downstream call: the inventory service reads slowly;
//   - CPU saturation: fraud scoring fans out to far more goroutines than
//     there are cores;
//   - a worker-pool backlog: a reconciliation burst fills the fulfilment
//     queue;
//   - errors: the inventory service fails, and the order with it.
//
// No threshold is set by hand: the adaptive latency trigger learns each
// span name's typical duration from the load's first requests (a few
// seconds; incidents wait for it), and a span ten times slower than the
// recent median of its name is anomalous. -latency-threshold sets a fixed
// threshold instead.
//
// Each anomalous span gets a flight-recorder snapshot, diagnosed by package
// analysis, and the demo logs one line for it with the span, the reason,
// the diagnosis's verdict and the snapshot's URL:
//
//	go run ./examples/demo
//
// Snapshots go to the store that -store names, by default $OTELFR_STORE,
// else $TMPDIR/otelfr-demo: a directory, or a bucket URL such as
// s3://BUCKET?region=REGION or file:///DIR (see package
// snapstore/bucketstore), which several replicas may share; each replica's
// resource carries a service.instance.id (OTEL_RESOURCE_ATTRIBUTES names
// it, else a random one) and its host.name, so that a viewer of the shared
// bucket tells them apart. The demo serves its store with the viewer on
// http://127.0.0.1:8081/snapshots/: in a browser, the URL of an anomaly
// opens its span's page, with the diagnosis and a goroutine timeline;
// other clients get the execution trace. With OTEL_EXPORTER_OTLP_ENDPOINT
// (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, spans and attachment spans
// are also exported over OTLP/gRPC, to Jaeger for instance; without it
// they are dropped, and nothing tries to connect anywhere.
//
// With -incident-log FILE (or $DEMO_INCIDENT_LOG) the demo also writes
// its own account of the incidents, JSON lines, for a test to compare the
// diagnoses with: one line per incident (its kind, ID, start and end), and
// one per anomalous span linked to a snapshot, with the incident that
// struck its request while the span ran, as the demo's code knows it
// ("by": "request": the
// incident's own mechanism hit it; "window": it ran while a process-wide
// incident, CPU saturation or GC pressure, was in progress), or none.
//
// Every listener binds 127.0.0.1 unless a flag says otherwise. SIGINT or
// SIGTERM stops the load, shuts the servers down and flushes the spans.
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
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	_ "gocloud.dev/blob/fileblob" // file:// stores
	_ "gocloud.dev/blob/s3blob"   // s3:// stores

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

type options struct {
	addr          string // orders API
	inventoryAddr string // the downstream service
	snapAddr      string // snapshot handler
	baseURL       string // where people reach the snapshot handler
	store         string // where snapshots are kept: a directory or a bucket URL
	rate          float64
	duration      time.Duration
	incidentEvery time.Duration
	threshold     time.Duration // fixed latency trigger; 0: adaptive
	minInterval   time.Duration // between snapshots
	incidentLog   string        // where the incident log goes; "": nowhere
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address of the orders API")
	flag.StringVar(&o.inventoryAddr, "inventory-addr", "127.0.0.1:8082", "listen address of the inventory service")
	flag.StringVar(&o.snapAddr, "snapshot-addr", "127.0.0.1:8081", "listen address of the snapshot handler")
	flag.StringVar(&o.baseURL, "snapshot-base-url", "",
		"base URL of snapshot links (default: $"+exporter.EnvBaseURL+", else http://<snapshot-addr>/snapshots/)")
	flag.StringVar(&o.store, "store", cmp.Or(os.Getenv(bucketstore.EnvStore), bucketstore.DefaultDir("demo")),
		"where snapshots are kept: a directory or a bucket URL (default $"+bucketstore.EnvStore+")")
	flag.Float64Var(&o.rate, "rate", 20, "requests per second from the load generator")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the load generator runs; 0 disables it")
	flag.DurationVar(&o.incidentEvery, "incident-every", 4*time.Second,
		"mean time between incidents, which start once the adaptive trigger has warmed up on the load; 0 disables them")
	flag.DurationVar(&o.threshold, "latency-threshold", 0,
		"spans at least this long are anomalous, instead of the adaptive trigger's; 0 keeps the adaptive trigger")
	flag.DurationVar(&o.minInterval, "snapshot-interval", 2*time.Second, "minimum time between two snapshots")
	flag.StringVar(&o.incidentLog, "incident-log", os.Getenv(envIncidentLog),
		"write the incident log to this file, JSON lines: each incident, and each anomalous span linked to a snapshot with the incident that struck it (default $"+envIncidentLog+")")
	flag.Parse()
	if o.baseURL == "" && os.Getenv(exporter.EnvBaseURL) == "" {
		o.baseURL = "http://" + o.snapAddr + "/snapshots/"
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, o options) (err error) {
	ilog, err := openIncidentLog(o.incidentLog)
	if err != nil {
		return err
	}
	// Closed after the telemetry's shutdown, which handles the last
	// anomalies.
	defer func() {
		if cerr := ilog.close(); err == nil {
			err = cerr
		}
	}()
	inc := newIncidents(ilog)
	tel, err := setupTelemetry(ctx, o, inc)
	if err != nil {
		return err
	}
	defer tel.shutdown()

	// Listen before anything sends requests, so that a port in use fails
	// the start rather than the first request. Closing a listener that its
	// server already closed does no harm.
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	listen := func(addr string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			listeners = append(listeners, l)
		}
		return l, err
	}
	ordersL, err := listen(o.addr)
	if err != nil {
		return err
	}
	inventoryL, err := listen(o.inventoryAddr)
	if err != nil {
		return err
	}
	snapL, err := listen(o.snapAddr)
	if err != nil {
		return err
	}

	cold, err := listenColdStorage()
	if err != nil {
		return err
	}
	defer cold.close()
	inv := newInventory(inc, cold)
	client := &http.Client{
		Transport: otelhttp.NewTransport(http.DefaultTransport,
			otelhttp.WithTracerProvider(tel.orders),
			otelhttp.WithSpanNameFormatter(spanName)),
		Timeout: 5 * time.Second,
	}
	svc := newOrders(inc, client, "http://"+inventoryL.Addr().String())
	defer svc.close()

	snapMux := http.NewServeMux()
	snapMux.Handle("/snapshots/", http.StripPrefix("/snapshots", viewer.NewHandler(tel.store)))

	servers := []server{
		{ordersL, newServer(otelhttp.NewHandler(svc.routes(), "orders",
			otelhttp.WithTracerProvider(tel.orders), otelhttp.WithSpanNameFormatter(spanName)))},
		{inventoryL, newServer(otelhttp.NewHandler(inv.routes(), "inventory",
			otelhttp.WithTracerProvider(tel.inventory), otelhttp.WithSpanNameFormatter(spanName)))},
		{snapL, newServer(snapMux)},
	}

	log.Printf("orders API on http://%s, inventory on http://%s", ordersL.Addr(), inventoryL.Addr())
	log.Printf("snapshots in %s, served on http://%s/snapshots/ (links: %s)", o.store, snapL.Addr(), tel.exp.URL("<ID>"))
	log.Print(tel.exporting)
	log.Print(tel.trigger)

	var wg sync.WaitGroup
	bg, cancelBG := context.WithCancel(ctx)
	defer func() {
		cancelBG()
		wg.Wait()
	}()
	// Incidents strike requests: they end with the built-in load, and
	// without it they strike the requests someone else sends.
	incCtx, endIncidents := context.WithCancel(bg)
	defer endIncidents()
	if o.duration > 0 && o.rate > 0 {
		wg.Go(func() {
			generateLoad(bg, "http://"+ordersL.Addr().String(), o.rate, o.duration)
			endIncidents()
		})
	}
	if o.incidentEvery > 0 {
		wg.Go(func() {
			if tel.warmUp(incCtx) {
				inc.run(incCtx, o.incidentEvery, svc)
			}
		})
	}

	return serve(ctx, servers)
}

// spanName names a span "METHOD /path" from its start: the SDK names the
// span's runtime/trace task then, so that the task list of a snapshot shows
// "POST /orders" rather than "POST". The demo's paths are few and fixed.
func spanName(_ string, r *http.Request) string {
	return r.Method + " " + r.URL.Path
}

type server struct {
	l net.Listener
	s *http.Server
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

// newServer returns a server of h within limits.
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: limits.readHeader,
		ReadTimeout:       limits.read,
		WriteTimeout:      limits.write,
		IdleTimeout:       limits.idle,
		MaxHeaderBytes:    limits.maxHeaderBytes,
	}
}

// serve runs the servers until ctx ends or one fails, then shuts them all
// down: requests in flight get 5s to finish, and connections still busy
// then (a client that stopped reading a download, say) are closed.
func serve(ctx context.Context, servers []server) error {
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errc <- s.s.Serve(s.l) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("serving: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		serr := s.s.Shutdown(shutdownCtx)
		if errors.Is(serr, context.DeadlineExceeded) {
			log.Printf("closing the connections still busy on %s after 5s", s.l.Addr())
			serr = s.s.Close()
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
