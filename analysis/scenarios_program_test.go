package analysis_test

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// Class 2: the verdict names the program's frames, not the libraries'
// and instrumentation's in the same stacks.
func programScenarios() []libScenario {
	return []libScenario{
		{"sql pool exhausted by a slow query", classProgram, scenarioSQLPool},
		{"sql query waiting on its server", classProgram, scenarioSQLWire},
		{"net-http transport's connection limit, via otelhttp", classProgram, scenarioHTTPConnLimit},
		{"net-http client, slow handler", classProgram, scenarioHTTPSlowHandler},
		{"gRPC client, slow server, via otelgrpc", classProgram, scenarioGRPCSlow},
		{"slog behind a slow writer", classProgram, scenarioSlog},
		{"json on a large value", classProgram, scenarioJSON},
		{"x-sync semaphore held by a sleeper", classProgram, scenarioSemaphore},
	}
}

// sqlConnector is a database/sql driver whose queries each take a while:
// sleeping, or waiting for a server at addr.
type sqlConnector struct {
	addr    string        // the server, for wireConn; "" for sleepConn
	started chan struct{} // receives when a slow query starts
	hold    time.Duration // how long a slow query sleeps; libWait if 0
}

func (c *sqlConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if c.addr == "" {
		hold := c.hold
		if hold == 0 {
			hold = libWait
		}
		return &sleepConn{started: c.started, hold: hold}, nil
	}
	nc, err := net.Dial("tcp", c.addr)
	if err != nil {
		return nil, err
	}
	return &wireConn{nc: nc}, nil
}

func (c *sqlConnector) Driver() driver.Driver { return nil }

type emptyRows struct{}

func (emptyRows) Columns() []string              { return []string{"n"} }
func (emptyRows) Close() error                   { return nil }
func (emptyRows) Next(dest []driver.Value) error { return io.EOF }

// baseConn is what every test connection does the same.
type baseConn struct{}

func (baseConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("not supported") }
func (baseConn) Begin() (driver.Tx, error)           { return nil, errors.New("not supported") }

// sleepConn runs a "slow" query for hold, any other at once.
type sleepConn struct {
	baseConn
	started chan struct{}
	hold    time.Duration
}

func (c *sleepConn) Close() error { return nil }

//go:noinline
func (c *sleepConn) QueryContext(ctx context.Context, q string, _ []driver.NamedValue) (driver.Rows, error) {
	if q == "slow" {
		c.started <- struct{}{}
		time.Sleep(c.hold)
	}
	return emptyRows{}, nil
}

// wireConn sends each query to its server and waits for the answer.
type wireConn struct {
	baseConn
	nc net.Conn
}

func (c *wireConn) Close() error { return c.nc.Close() }

//go:noinline
func (c *wireConn) QueryContext(ctx context.Context, q string, _ []driver.NamedValue) (driver.Rows, error) {
	if _, err := c.nc.Write([]byte("ping")); err != nil {
		return nil, err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c.nc, buf); err != nil {
		return nil, err
	}
	return emptyRows{}, nil
}

// repo is the program's data access.
type repo struct{ db *sql.DB }

//go:noinline
func (r *repo) find(ctx context.Context) error {
	rows, err := r.db.QueryContext(ctx, "fast")
	if err != nil {
		return err
	}
	return rows.Close()
}

//go:noinline
func (r *repo) report(ctx context.Context) error {
	rows, err := r.db.QueryContext(ctx, "slow")
	if err != nil {
		return err
	}
	return rows.Close()
}

func scenarioSQLPool(t *testing.T, p *pipe) truth {
	c := &sqlConnector{started: make(chan struct{}, 1)}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(1)
	r := &repo{db: db}
	done := make(chan error, 1)
	go func() { done <- r.report(context.Background()) }()
	<-c.started
	var waited time.Duration
	p.span("find", func(ctx context.Context) {
		waited = timed(func() { require.NoError(t, r.find(ctx)) })
	})
	require.NoError(t, <-done)
	return truth{state: analysis.StateBlockedSelect, dur: waited,
		place: "blocked in select in analysis_test.(*repo).find",
		root:  []string{"by goroutine", "in analysis_test.(*repo).report", "sleeping"}}
}

func scenarioSQLWire(t *testing.T, p *pipe) truth {
	db := sql.OpenDB(&sqlConnector{addr: slowServer(t, libWait)})
	defer db.Close()
	r := &repo{db: db}
	require.NoError(t, db.PingContext(t.Context())) // a connection in the pool
	var waited time.Duration
	p.span("find", func(ctx context.Context) {
		waited = timed(func() { require.NoError(t, r.find(ctx)) })
	})
	return truth{state: analysis.StateBlockedNetwork, dur: waited,
		place: "waiting on the network in analysis_test.(*wireConn).QueryContext"}
}

// apiClient calls a downstream HTTP API.
type apiClient struct {
	c    *http.Client
	base string
}

//go:noinline
func (a *apiClient) get(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// slowAPI serves /slow after delay (telling arrived first) and anything
// else at once.
func slowAPI(t *testing.T, delay time.Duration, arrived chan<- struct{}) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			if arrived != nil {
				arrived <- struct{}{}
			}
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func scenarioHTTPConnLimit(t *testing.T, p *pipe) truth {
	arrived := make(chan struct{}, 1)
	srv := slowAPI(t, libWait, arrived)
	tr := &http.Transport{MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	a := &apiClient{c: &http.Client{Transport: otelhttp.NewTransport(tr, otelhttp.WithTracerProvider(p.tp))}, base: srv.URL}
	done := make(chan error, 1)
	go func() { done <- a.get(context.Background(), "/slow") }()
	<-arrived
	var waited time.Duration
	p.span("fast call", func(ctx context.Context) {
		waited = timed(func() { require.NoError(t, a.get(ctx, "/fast")) })
	})
	require.NoError(t, <-done)
	// The connection comes back from its reader goroutine once the slow
	// response is read: a goroutine of the transport, with no frame of the
	// program, waiting for the server.
	return truth{state: analysis.StateBlockedSelect, dur: waited,
		place: "blocked in select in analysis_test.(*apiClient).get",
		root:  []string{"in http.(*persistConn).readLoop", "waiting on the network"}}
}

func scenarioHTTPSlowHandler(t *testing.T, p *pipe) truth {
	srv := slowAPI(t, libWait, nil)
	a := &apiClient{c: srv.Client(), base: srv.URL}
	require.NoError(t, a.get(t.Context(), "/fast")) // a connection in the pool
	var waited time.Duration
	p.span("call", func(ctx context.Context) {
		waited = timed(func() { require.NoError(t, a.get(ctx, "/slow")) })
	})
	return truth{state: analysis.StateBlockedSelect, dur: waited,
		place: "blocked in select in analysis_test.(*apiClient).get",
		root:  []string{"in http.(*persistConn).readLoop", "waiting on the network"}}
}

// slowHealth answers health checks of a service after a delay, of the
// server at once.
type slowHealth struct {
	healthpb.UnimplementedHealthServer
	delay time.Duration
}

//go:noinline
func (h *slowHealth) Check(ctx context.Context, in *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if in.Service != "" {
		// A server that does not heed the deadline: a client that gives
		// up does so on its own timer.
		time.Sleep(h.delay)
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// grpcServer serves slowHealth on 127.0.0.1 and returns a client of it,
// instrumented with otelgrpc.
func grpcServer(t *testing.T, p *pipe, delay time.Duration) healthpb.HealthClient {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, &slowHealth{delay: delay})
	served := make(chan struct{})
	go func() { defer close(served); _ = s.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(p.tp))))
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		s.Stop()
		<-served
	})
	return healthpb.NewHealthClient(conn)
}

// inventory checks a downstream service over gRPC.
//
//go:noinline
func checkInventory(ctx context.Context, c healthpb.HealthClient) error {
	_, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "inventory"})
	return err
}

func scenarioGRPCSlow(t *testing.T, p *pipe) truth {
	c := grpcServer(t, p, libWait)
	_, err := c.Check(t.Context(), &healthpb.HealthCheckRequest{}) // connected
	require.NoError(t, err)
	var waited time.Duration
	p.span("reserve", func(ctx context.Context) {
		waited = timed(func() { require.NoError(t, checkInventory(ctx, c)) })
	})
	return truth{state: analysis.StateBlockedSelect, dur: waited,
		place: "blocked in select in analysis_test.checkInventory",
		root:  []string{"in transport.", "waiting on the network"}}
}

// slowWriter is a log destination that takes long to write to, like a
// full pipe.
type slowWriter struct {
	mu    sync.Mutex
	delay time.Duration
	buf   bytes.Buffer
}

//go:noinline
func (w *slowWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.delay > 0 {
		time.Sleep(w.delay)
		w.delay = 0
	}
	return w.buf.Write(p)
}

//go:noinline
func auditOrder(l *slog.Logger, id int) {
	l.Info("order placed", "id", id)
}

//go:noinline
func auditStartup(l *slog.Logger, started chan<- struct{}) {
	close(started)
	l.Info("started")
}

func scenarioSlog(t *testing.T, p *pipe) truth {
	w := &slowWriter{delay: libWait}
	l := slog.New(slog.NewJSONHandler(w, nil))
	started := make(chan struct{})
	go auditStartup(l, started)
	<-started
	time.Sleep(10 * time.Millisecond) // the startup line is being written
	var waited time.Duration
	p.span("place order", func(ctx context.Context) { waited = timed(func() { auditOrder(l, 1) }) })
	return truth{state: analysis.StateBlockedMutex, dur: waited - 10*time.Millisecond,
		place: "blocked on sync.Mutex in analysis_test.auditOrder",
		root:  []string{"released by goroutine", "in analysis_test.auditStartup", "sleeping in analysis_test.(*slowWriter).Write"}}
}

// catalog is a large value to serve as JSON.
type catalog struct {
	Items []catalogItem `json:"items"`
}

type catalogItem struct {
	ID    int               `json:"id"`
	Name  string            `json:"name"`
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs"`
}

//go:noinline
func encodeCatalog(c *catalog, d time.Duration) (n int) {
	for start := time.Now(); time.Since(start) < d; {
		b, err := json.Marshal(c)
		if err != nil {
			panic(err)
		}
		n += len(b)
	}
	return n
}

func scenarioJSON(t *testing.T, p *pipe) truth {
	c := &catalog{}
	for i := range 2000 {
		c.Items = append(c.Items, catalogItem{ID: i, Name: "item", Tags: []string{"a", "b"}, Attrs: map[string]string{"k": "v", "l": "w"}})
	}
	var ran time.Duration
	p.span("catalog", func(ctx context.Context) { ran = timed(func() { encodeCatalog(c, libWait) }) })
	return truth{state: analysis.StateRunning, dur: ran,
		place: "running in analysis_test.encodeCatalog"}
}

// limiter bounds concurrent exports with a weighted semaphore.
type limiter struct{ sem *semaphore.Weighted }

//go:noinline
func (l *limiter) export(ctx context.Context, hold time.Duration, acquired chan<- struct{}) error {
	if err := l.sem.Acquire(ctx, 1); err != nil {
		return err
	}
	if acquired != nil {
		close(acquired)
	}
	time.Sleep(hold)
	l.sem.Release(1)
	return nil
}

func scenarioSemaphore(t *testing.T, p *pipe) truth {
	l := &limiter{sem: semaphore.NewWeighted(1)}
	acquired := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- l.export(context.Background(), libWait, acquired) }()
	<-acquired
	var waited time.Duration
	p.span("export", func(ctx context.Context) {
		waited = timed(func() { require.NoError(t, l.export(ctx, 0, nil)) })
	})
	require.NoError(t, <-done)
	return truth{state: analysis.StateBlockedSelect, dur: waited,
		place: "blocked in select in analysis_test.(*limiter).export",
		root:  []string{"woken by goroutine", "in analysis_test.(*limiter).export", "sleeping"}}
}
