package bucketstore_test

import (
	"context"
	"maps"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// spanKey is what spanCounter counts spans by.
type spanKey struct{ service, name string }

// spanCounter is a real OTLP/gRPC trace receiver on loopback that counts
// the spans it receives, by service.name and span name, and keeps nothing
// else, so that its memory does not grow with what it receives.
type spanCounter struct {
	coltracepb.UnimplementedTraceServiceServer
	addr string

	mu     sync.Mutex
	counts map[spanKey]int
}

// newSpanCounter starts a spanCounter, stopped when t ends.
func newSpanCounter(t *testing.T) *spanCounter {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &spanCounter{addr: l.Addr().String(), counts: map[spanKey]int{}}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, c)
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(l) })
	t.Cleanup(func() {
		srv.Stop()
		wg.Wait()
	})
	return c
}

// Endpoint returns the address to export to, as "127.0.0.1:PORT".
func (c *spanCounter) Endpoint() string { return c.addr }

func (c *spanCounter) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		var service string
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				c.counts[spanKey{service, sp.GetName()}]++
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// wait returns the counts once they total at least n, or when timeout has
// passed.
func (c *spanCounter) wait(t *testing.T, n int, timeout time.Duration) map[spanKey]int {
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		counts := maps.Clone(c.counts)
		c.mu.Unlock()
		total := 0
		for _, k := range counts {
			total += k
		}
		if total >= n || time.Now().After(deadline) {
			return counts
		}
		time.Sleep(100 * time.Millisecond)
	}
}
