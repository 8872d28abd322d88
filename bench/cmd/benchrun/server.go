package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/metrics"
	rt "runtime/trace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// The service under test. It runs in its own process ("benchrun server"),
// so that its CPU time and memory are its own; the runner drives it over
// 127.0.0.1 and reads its counters from a second, untraced listener.

// Tracing setups of the service.
const (
	setupNone     = "none"     // SDK tracing only
	setupRecorder = "recorder" // + otelfr.Start
	setupFull     = "full"     // + WrapTracerProvider + spanprocessor
)

type serverConfig struct {
	setup       string
	window      uint64
	minAge      time.Duration
	minInterval time.Duration
	byteBudget  int64
	coalesce    time.Duration // < 0: the default
	latency     time.Duration
	slowLatency time.Duration // threshold of the "GET /slow" spans
	dual        bool          // a second pipeline under /c20/ with the default coalesce window
	store       string
	probe       bool // adopt our own flight recorder, so that /window can measure it
	stamp       bool // time the snapshot path of anomalous spans
}

func runServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	var c serverConfig
	fs.StringVar(&c.setup, "setup", setupFull, "none, recorder or full")
	fs.Uint64Var(&c.window, "window", otelfr.DefaultMaxBytes, "flight recorder MaxBytes")
	fs.DurationVar(&c.minAge, "min-age", otelfr.DefaultMinAge, "flight recorder MinAge")
	fs.DurationVar(&c.minInterval, "min-interval", time.Second, "minimum time between snapshots")
	fs.Int64Var(&c.byteBudget, "byte-budget", otelfr.DefaultByteBudget, "snapshot bytes per hour; 0 disables")
	fs.DurationVar(&c.coalesce, "coalesce", -1, "coalesce window; < 0 keeps the default")
	fs.DurationVar(&c.latency, "latency", 100*time.Millisecond, "latency threshold")
	fs.DurationVar(&c.slowLatency, "slow-latency", 100*time.Millisecond, "latency threshold of GET /slow spans")
	fs.BoolVar(&c.dual, "dual", false, "serve a second pipeline, default coalesce window, under /c20/")
	fs.StringVar(&c.store, "store", "", "snapshot directory (a temporary one if empty)")
	fs.BoolVar(&c.probe, "probe", false, "adopt a flight recorder of our own to measure its window")
	fs.BoolVar(&c.stamp, "stamp", false, "time the snapshot path of anomalous spans")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := newServer(c)
	if err != nil {
		return err
	}
	return s.serve()
}

type server struct {
	cfg   serverConfig
	fr    *rt.FlightRecorder // ours when probing
	rec   *otelfr.Recorder
	tps   []*sdktrace.TracerProvider
	procs []*spanprocessor.Processor
	app   http.Handler
	quit  chan struct{}
	churn atomic.Int64 // in-process requests per second
	// noRecord stops the per-anomaly bookkeeping below, so that the
	// storm's memory is otelfr's and not the benchmark's.
	noRecord atomic.Bool

	mu       sync.Mutex
	onEnd    map[trace.SpanID]int64 // anomalous span → when OnEnd began (unix ns)
	outcomes []anomalyRecord
	attached map[trace.SpanID]attachRecord
	saves    map[string][2]int64 // snapshot ID → Save's start and end
}

// anomalyRecord is what the runner learns about one anomalous span.
type anomalyRecord struct {
	Pipeline   string `json:"pipeline"`
	TraceID    string `json:"trace_id"`
	SpanID     string `json:"span_id"`
	Name       string `json:"name"`
	Start      int64  `json:"start"` // the span's start and end, unix ns
	End        int64  `json:"end"`
	Reason     string `json:"reason"`
	Skipped    string `json:"skipped,omitempty"`
	SnapshotID string `json:"snapshot_id,omitempty"`
	Path       string `json:"path,omitempty"`
	OnEnd      int64  `json:"on_end"`   // OnEnd called
	Stored     int64  `json:"stored"`   // snapshot stored, span forwarded (WithOnAnomaly)
	Attached   int64  `json:"attached"` // attachment received by the span exporter
	TakenAt    int64  `json:"taken_at"` // the snapshot's write out of the flight recorder
	WriteNS    int64  `json:"write_ns"`
	SaveStart  int64  `json:"save_start"` // SnapshotWriter.Commit called
	SaveEnd    int64  `json:"save_end"`   // SnapshotWriter.Commit returned
	Size       int64  `json:"size"`
}

type attachRecord struct {
	at, takenAt, writeNS, size int64
}

func newServer(c serverConfig) (*server, error) {
	s := &server{
		cfg:      c,
		quit:     make(chan struct{}),
		onEnd:    map[trace.SpanID]int64{},
		attached: map[trace.SpanID]attachRecord{},
		saves:    map[string][2]int64{},
	}
	if c.setup != setupNone {
		opts := []otelfr.Option{
			otelfr.WithMaxBytes(c.window), otelfr.WithMinAge(c.minAge),
			otelfr.WithMinInterval(c.minInterval), otelfr.WithByteBudget(c.byteBudget, 0),
		}
		if c.probe {
			s.fr = rt.NewFlightRecorder(rt.FlightRecorderConfig{MinAge: c.minAge, MaxBytes: c.window})
			if err := s.fr.Start(); err != nil {
				return nil, err
			}
			opts = append(opts, otelfr.WithFlightRecorder(s.fr))
		}
		rec, err := otelfr.Start(opts...)
		if err != nil {
			return nil, err
		}
		s.rec = rec
	}
	if c.store == "" {
		dir, err := os.MkdirTemp("", "otelfr-bench-store-")
		if err != nil {
			return nil, err
		}
		c.store = dir
		s.cfg.store = dir
	}
	dir, err := snapstore.NewDirStore(c.store, snapstore.WithMaxCount(4))
	if err != nil {
		return nil, err
	}
	store := &timedStore{Store: dir, s: s}

	mux := http.NewServeMux()
	mux.Handle("/", s.pipeline("c0", c.coalesce, store))
	if c.dual {
		mux.Handle("/c20/", http.StripPrefix("/c20", s.pipeline("c20", -1, store)))
	}
	s.app = mux
	return s, nil
}

// pipeline returns the instrumented service with a tracer provider of its
// own.
func (s *server) pipeline(name string, coalesce time.Duration, store snapstore.Store) http.Handler {
	var sp sdktrace.SpanProcessor = sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter())
	var opts []sdktrace.TracerProviderOption
	if s.cfg.setup == setupFull {
		popts := []spanprocessor.Option{
			spanprocessor.WithLatencyThreshold(s.cfg.latency),
			spanprocessor.WithSpanNameThreshold("GET /slow", s.cfg.slowLatency),
			spanprocessor.WithOnAnomaly(func(o spanprocessor.Outcome) { s.outcome(name, o) }),
		}
		if coalesce >= 0 {
			popts = append(popts, spanprocessor.WithCoalesceWindow(coalesce))
		}
		exp := exporter.New(store, &attachExporter{s: s}, exporter.WithBaseURL("http://127.0.0.1:1/snapshots/"))
		proc := spanprocessor.New(sp, s.rec, exp, popts...)
		s.procs = append(s.procs, proc)
		if s.cfg.stamp {
			// The SDK calls processors in the order registered: the
			// stamp runs just before the processor's OnEnd.
			opts = append(opts, sdktrace.WithSpanProcessor(stamp{s: s}))
		}
		sp = proc
	}
	opts = append(opts, sdktrace.WithSpanProcessor(sp))
	sdk := sdktrace.NewTracerProvider(opts...)
	s.tps = append(s.tps, sdk)
	var tp trace.TracerProvider = sdk
	if s.cfg.setup == setupFull {
		tp = otelfr.WrapTracerProvider(sdk)
	}
	h := &service{tracer: tp.Tracer("bench/service")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items", h.items)
	mux.HandleFunc("GET /slow", h.slow)
	return otelhttp.NewHandler(mux, "http.server", otelhttp.WithTracerProvider(tp),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
}

// service is the small handler under test: look an item up in a shared
// inventory under a lock, in a child span, hash it and answer JSON.
type service struct {
	tracer trace.Tracer
	mu     sync.Mutex
	stock  map[int]int
	slowMu sync.Mutex
}

type item struct {
	ID     int    `json:"id"`
	Stock  int    `json:"stock"`
	Digest string `json:"digest"`
	Region string `json:"region"`
}

func (h *service) items(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.Atoi(r.URL.Query().Get("id"))
	_, span := h.tracer.Start(r.Context(), "inventory.lookup", trace.WithAttributes(attribute.Int("item.id", id)))
	h.mu.Lock()
	if h.stock == nil {
		h.stock = make(map[int]int, 1024)
		for i := range 1024 {
			h.stock[i] = i * 7 % 100
		}
	}
	n := h.stock[id%1024]
	h.mu.Unlock()
	var buf [256]byte
	copy(buf[:], r.URL.RawQuery)
	sum := sha256.Sum256(buf[:])
	span.End()
	if r.URL.Query().Get("fail") != "" {
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(item{ID: id, Stock: n, Digest: fmt.Sprintf("%x", sum[:8]), Region: "eu-west-1"})
}

// slow waits on a mutex that another goroutine holds while it works, the
// kind of episode a diagnosis should name.
func (h *service) slow(w http.ResponseWriter, r *http.Request) {
	ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
	started := make(chan struct{})
	go func() {
		h.slowMu.Lock()
		defer h.slowMu.Unlock()
		close(started)
		var d [32]byte
		for deadline := time.Now().Add(time.Duration(ms) * time.Millisecond); time.Now().Before(deadline); {
			d = sha256.Sum256(d[:])
		}
	}()
	<-started
	h.slowMu.Lock()
	//lint:ignore SA2001 the wait is the point
	h.slowMu.Unlock()
	fmt.Fprintln(w, "slow")
}

// stamp records when OnEnd begins for the spans the processor will find
// anomalous (status Error or a /slow request), just before the processor's
// own OnEnd; it does nothing for normal spans but read their status.
type stamp struct{ s *server }

func (stamp) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (st stamp) OnEnd(sp sdktrace.ReadOnlySpan) {
	if sp.SpanKind() != trace.SpanKindServer {
		return
	}
	if st.s.noRecord.Load() || sp.Status().Code != codes.Error && sp.Name() != "GET /slow" {
		return
	}
	now := time.Now().UnixNano()
	st.s.mu.Lock()
	st.s.onEnd[sp.SpanContext().SpanID()] = now
	st.s.mu.Unlock()
}
func (stamp) Shutdown(context.Context) error   { return nil }
func (stamp) ForceFlush(context.Context) error { return nil }

func (s *server) outcome(pipeline string, o spanprocessor.Outcome) {
	if s.noRecord.Load() {
		return
	}
	now := time.Now().UnixNano()
	sc := o.Span.SpanContext()
	r := anomalyRecord{
		Pipeline: pipeline, TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(), Name: o.Span.Name(),
		Start: o.Span.StartTime().UnixNano(), End: o.Span.EndTime().UnixNano(),
		Reason: o.Reason, Skipped: o.Skipped, SnapshotID: o.SnapshotID, Stored: now,
	}
	if o.SnapshotID != "" {
		r.Path = s.cfg.store + "/" + o.SnapshotID + ".trace"
	}
	s.mu.Lock()
	r.OnEnd = s.onEnd[sc.SpanID()]
	delete(s.onEnd, sc.SpanID())
	s.outcomes = append(s.outcomes, r)
	s.mu.Unlock()
}

// timedStore records when Save starts and ends, to split the snapshot path.
type timedStore struct {
	snapstore.Store
	s *server
}

func (t *timedStore) Save(ctx context.Context, snap *otelfr.Snapshot) (snapstore.Info, error) {
	start := time.Now().UnixNano()
	info, err := t.Store.Save(ctx, snap)
	t.s.recordSave(snap.ID, start)
	return info, err
}

// recordSave records that the store took snapshot id from start until
// now, unless recording is off.
func (s *server) recordSave(id string, start int64) {
	end := time.Now().UnixNano()
	if s.noRecord.Load() {
		return
	}
	s.mu.Lock()
	s.saves[id] = [2]int64{start, end}
	s.mu.Unlock()
}

// Create makes timedStore a snapstore.Creator, as the DirStore it wraps
// is: the processor streams snapshots into it, and Commit is timed as
// Save is.
func (t *timedStore) Create(ctx context.Context) (snapstore.SnapshotWriter, error) {
	w, err := t.Store.(snapstore.Creator).Create(ctx)
	if err != nil {
		return nil, err
	}
	return &timedWriter{SnapshotWriter: w, s: t.s}, nil
}

// SetSHA256 makes timedStore a snapstore.Checksummer, as the DirStore it
// wraps is: the processor stores snapshots unhashed, and hashes them on a
// later stage.
func (t *timedStore) SetSHA256(ctx context.Context, id, sum string) error {
	return t.Store.(snapstore.Checksummer).SetSHA256(ctx, id, sum)
}

type timedWriter struct {
	snapstore.SnapshotWriter
	s *server
}

func (t *timedWriter) Commit(ctx context.Context, snap *otelfr.Snapshot) (snapstore.Info, error) {
	start := time.Now().UnixNano()
	info, err := t.SnapshotWriter.Commit(ctx, snap)
	t.s.recordSave(snap.ID, start)
	return info, err
}

// attachExporter records when each attachment span arrives.
type attachExporter struct{ s *server }

func (e *attachExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.s.noRecord.Load() {
		return nil
	}
	now := time.Now().UnixNano()
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	for _, sp := range spans {
		// The attachment of a finished span is timed inside that span,
		// not around the write: the write's start is an attribute, and it
		// ends at Commit (timedWriter).
		var size, takenAt int64
		for _, kv := range sp.Attributes() {
			switch kv.Key {
			case otelfr.SnapshotSizeKey:
				size = kv.Value.AsInt64()
			case otelfr.SnapshotTakenAtKey:
				if t, err := time.Parse(time.RFC3339Nano, kv.Value.AsString()); err == nil {
					takenAt = t.UnixNano()
				}
			}
		}
		e.s.attached[sp.Parent().SpanID()] = attachRecord{at: now, takenAt: takenAt, size: size}
	}
	return nil
}

func (*attachExporter) Shutdown(context.Context) error { return nil }

func (s *server) serve() error {
	app, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	appSrv := &http.Server{Handler: s.app, ReadHeaderTimeout: 5 * time.Second}
	ctlSrv := &http.Server{Handler: s.control(), ReadHeaderTimeout: 5 * time.Second}
	go appSrv.Serve(app)
	go ctlSrv.Serve(ctl)
	go s.churner()
	fmt.Printf("READY app=%s ctl=%s\n", app.Addr(), ctl.Addr())

	// Never outlive the runner: stop when it is gone, or after 30 minutes.
	parent := os.Getppid()
	deadline := time.After(30 * time.Minute)
wait:
	for {
		select {
		case <-s.quit:
			break wait
		case <-deadline:
			break wait
		case <-time.After(time.Second):
			if os.Getppid() != parent {
				break wait
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = appSrv.Shutdown(ctx)
	for _, tp := range s.tps {
		_ = tp.Shutdown(ctx)
	}
	if s.rec != nil {
		_ = s.rec.Stop(ctx)
	}
	if s.fr != nil {
		s.fr.Stop()
	}
	_ = ctlSrv.Shutdown(ctx)
	return nil
}

// churner, while its rate is above zero, serves rate requests per second
// in-process (the same handler and tracing, without the network): it fills
// the flight recorder's window with the service's kind of events faster
// than the client alone, at a pace the runner sets so that each trace
// generation (about a second) stays a small part of the window.
func (s *server) churner() {
	const workers = 4
	for {
		for s.churn.Load() == 0 {
			select {
			case <-s.quit:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		var wg sync.WaitGroup
		for k := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				begin, done := time.Now(), 0.0
				for i := k; ; i += workers {
					rate := float64(s.churn.Load()) / workers
					if rate == 0 {
						return
					}
					due := rate * time.Since(begin).Seconds()
					if due > done+rate { // fell behind by over a second: forget it
						done = due - rate
					}
					for ; done < due; done++ {
						req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/items?id=%d", i), nil)
						s.app.ServeHTTP(httptest.NewRecorder(), req)
					}
					time.Sleep(time.Millisecond)
				}
			}()
		}
		wg.Wait()
	}
}

func (s *server) control() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rusage", func(w http.ResponseWriter, _ *http.Request) {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		writeJSON(w, map[string]int64{
			"utime_us": ru.Utime.Sec*1e6 + ru.Utime.Usec,
			"stime_us": ru.Stime.Sec*1e6 + ru.Stime.Usec,
		})
	})
	mux.HandleFunc("GET /mem", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, readMem()) })
	mux.HandleFunc("POST /gc", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		writeJSON(w, readMem())
	})
	mux.HandleFunc("GET /window", func(w http.ResponseWriter, _ *http.Request) {
		if s.fr == nil {
			http.Error(w, "not probing", http.StatusConflict)
			return
		}
		var c countWriter
		if _, err := s.fr.WriteTo(&c); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		writeJSON(w, map[string]int64{"bytes": int64(c)})
	})
	mux.HandleFunc("POST /dump", func(w http.ResponseWriter, r *http.Request) {
		// The flight recorder's window, for looking into the benchmark itself.
		if s.fr == nil {
			http.Error(w, "not probing", http.StatusConflict)
			return
		}
		f, err := os.Create(r.URL.Query().Get("file"))
		if err == nil {
			_, err = s.fr.WriteTo(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("POST /record", func(w http.ResponseWriter, r *http.Request) {
		s.noRecord.Store(r.URL.Query().Get("on") == "0")
	})
	mux.HandleFunc("POST /churn", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("rate"), 10, 64)
		s.churn.Store(max(n, 0))
	})
	mux.HandleFunc("GET /anomalies", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		out := make([]anomalyRecord, len(s.outcomes))
		copy(out, s.outcomes)
		for i := range out {
			sid, _ := trace.SpanIDFromHex(out[i].SpanID)
			if a, ok := s.attached[sid]; ok {
				out[i].Attached, out[i].TakenAt, out[i].WriteNS, out[i].Size = a.at, a.takenAt, a.writeNS, a.size
			}
			if sv, ok := s.saves[out[i].SnapshotID]; ok {
				out[i].SaveStart, out[i].SaveEnd = sv[0], sv[1]
			}
		}
		s.mu.Unlock()
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		var st []spanprocessor.Stats
		for _, p := range s.procs {
			st = append(st, p.Stats())
		}
		writeJSON(w, st)
	})
	mux.HandleFunc("POST /quit", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		close(s.quit)
	})
	return mux
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// memStats is the memory the server holds.
type memStats struct {
	RSS       int64 `json:"rss"`        // VmRSS
	HWM       int64 `json:"hwm"`        // VmHWM, the peak RSS
	HeapLive  int64 `json:"heap_live"`  // live heap after the last GC
	HeapInUse int64 `json:"heap_inuse"` // heap objects, live and not yet swept
	GoTotal   int64 `json:"go_total"`   // everything the Go runtime mapped
	Other     int64 `json:"other"`      // runtime-internal, which holds the tracer's buffers
}

func readMem() memStats {
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/other:bytes"},
	}
	metrics.Read(samples)
	m := memStats{
		HeapLive:  int64(samples[0].Value.Uint64()),
		HeapInUse: int64(samples[1].Value.Uint64()),
		GoTotal:   int64(samples[2].Value.Uint64()),
		Other:     int64(samples[3].Value.Uint64()),
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				m.RSS = kb << 10
			case "VmHWM:":
				m.HWM = kb << 10
			}
		}
	}
	return m
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
