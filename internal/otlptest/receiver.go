package otlptest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// gracefulStopTimeout bounds how long Close waits for in-flight RPCs to
// finish before forcing the server down.
const gracefulStopTimeout = 5 * time.Second

// Option configures a [Receiver] created by [NewReceiver].
type Option func(*config)

type config struct {
	exportErr codes.Code
	hang      bool
}

// WithExportError makes every Export call fail with a gRPC status error
// carrying code. Failed requests are counted by [Receiver.Requests] but their
// spans are not recorded. Passing [codes.OK] disables the fault.
//
// Whether an exporter retries depends on code: OTLP exporters retry codes
// such as Unavailable and give up at once on codes such as PermissionDenied.
func WithExportError(code codes.Code) Option {
	return func(c *config) { c.exportErr = code }
}

// WithHang makes every Export call block until the request's context is done
// (the call then fails with the matching Canceled or DeadlineExceeded status)
// or the receiver is closed (the call then fails with Unavailable). Hung
// requests are counted by [Receiver.Requests] but their spans are not
// recorded. If combined with [WithExportError], the hang applies.
func WithHang() Option {
	return func(c *config) { c.hang = true }
}

// Receiver is an in-process OTLP/gRPC trace receiver listening on
// 127.0.0.1. Create it with [NewReceiver]; all methods are safe for
// concurrent use.
type Receiver struct {
	cfg       config
	lis       net.Listener
	srv       *grpc.Server
	serveDone chan struct{}

	closeOnce sync.Once
	closed    chan struct{}

	mu       sync.Mutex
	requests int
	received []*tracepb.ResourceSpans // accepted data; never mutated once appended
	changed  chan struct{}            // closed and replaced on every Export
}

// NewReceiver starts a receiver listening on 127.0.0.1 with a port chosen by
// the kernel. It registers a tb.Cleanup that calls [Receiver.Close], so the
// server and all its goroutines are gone when the test finishes. It calls
// tb.Fatal if it cannot listen.
func NewReceiver(tb testing.TB, opts ...Option) *Receiver {
	tb.Helper()

	var cfg config
	for _, opt := range opts {
		opt(&cfg)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("otlptest: listen on 127.0.0.1:0: %v", err)
	}

	r := &Receiver{
		cfg:       cfg,
		lis:       lis,
		srv:       grpc.NewServer(),
		serveDone: make(chan struct{}),
		closed:    make(chan struct{}),
		changed:   make(chan struct{}),
	}
	coltracepb.RegisterTraceServiceServer(r.srv, traceServer{r: r})

	go func() {
		defer close(r.serveDone)
		// Serve returns nil once the server is stopped; any other error
		// means the listener broke, which tests observe as failed exports.
		_ = r.srv.Serve(lis)
	}()

	tb.Cleanup(r.Close)
	return r
}

// Endpoint returns the address the receiver listens on, as "127.0.0.1:PORT".
// Use it with otlptracegrpc.WithEndpoint plus otlptracegrpc.WithInsecure, or
// as OTEL_EXPORTER_OTLP_ENDPOINT="http://" + Endpoint().
func (r *Receiver) Endpoint() string {
	return r.lis.Addr().String()
}

// Requests returns the number of Export calls received so far, including
// calls that failed because of [WithExportError] or [WithHang].
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// Spans returns every span accepted so far, in arrival order. The result is
// a fresh copy: callers may modify it freely.
func (r *Receiver) Spans() []Span {
	spans, _ := r.snapshot()
	return spans
}

// WaitForSpans blocks until pred, called with everything received so far,
// reports true, and then returns the spans pred accepted. It re-evaluates
// pred after every Export call (so pred may also consult
// [Receiver.Requests]) and never polls. If ctx ends first, or the receiver
// is closed, it returns the last spans seen together with an error.
//
// pred is called without internal locks held and receives a private copy.
func (r *Receiver) WaitForSpans(ctx context.Context, pred func([]Span) bool) ([]Span, error) {
	for {
		spans, changed := r.snapshot()
		if pred(spans) {
			return spans, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return spans, fmt.Errorf("otlptest: waiting for spans (%d received in %d requests): %w",
				len(spans), r.Requests(), context.Cause(ctx))
		case <-r.closed:
			return spans, fmt.Errorf("otlptest: receiver closed while waiting for spans (%d received in %d requests)",
				len(spans), r.Requests())
		}
	}
}

// Close stops the receiver: it releases Export calls hung by [WithHang],
// gracefully stops the gRPC server and, if in-flight calls do not finish
// within a few seconds, stops it forcibly. It returns once the server's
// goroutines have exited. Close is idempotent and is also called by the
// cleanup registered in [NewReceiver].
func (r *Receiver) Close() {
	r.closeOnce.Do(func() {
		close(r.closed)

		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			r.srv.GracefulStop()
		}()

		timer := time.NewTimer(gracefulStopTimeout)
		defer timer.Stop()
		select {
		case <-stopped:
		case <-timer.C:
			// Stop closes every connection, which also lets the pending
			// GracefulStop return once the handlers have exited.
			r.srv.Stop()
			<-stopped
		}
		<-r.serveDone
	})
}

// snapshot returns a flattened copy of the accepted spans and the channel
// that will be closed on the next Export call.
func (r *Receiver) snapshot() ([]Span, <-chan struct{}) {
	r.mu.Lock()
	received := r.received[:len(r.received):len(r.received)]
	changed := r.changed
	r.mu.Unlock()
	// Appended ResourceSpans are never mutated, so flattening can happen
	// outside the lock.
	return flatten(received), changed
}

// notifyLocked wakes every WaitForSpans call. r.mu must be held.
func (r *Receiver) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// traceServer implements the OTLP TraceService for a Receiver without adding
// an Export method to the Receiver's own API.
type traceServer struct {
	coltracepb.UnimplementedTraceServiceServer

	r *Receiver
}

// Export records the request and, unless a fault is configured, its spans.
func (s traceServer) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r := s.r

	r.mu.Lock()
	r.requests++
	r.notifyLocked()
	r.mu.Unlock()

	if r.cfg.hang {
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-r.closed:
			return nil, status.Error(codes.Unavailable, "otlptest: receiver closed")
		}
	}
	if code := r.cfg.exportErr; code != codes.OK {
		return nil, status.Errorf(code, "otlptest: injected export error (%s)", code)
	}

	r.mu.Lock()
	r.received = append(r.received, req.GetResourceSpans()...)
	r.notifyLocked()
	r.mu.Unlock()

	return &coltracepb.ExportTraceServiceResponse{}, nil
}
