package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The Stock service, written by hand where protoc would generate it: one
// unary method whose request and response are protobuf's well-known
// StringValue, so that gRPC's default codec carries them.
const (
	stockService = "otelfr.example.Stock"
	lookupMethod = "/" + stockService + "/Lookup"
)

// Items the client asks for, each a different path through the service.
const (
	itemFresh    = "fresh"    // answered from memory
	itemStale    = "stale"    // waits for a refresh that holds the lock
	itemUnlisted = "unlisted" // NotFound: a client mistake, no anomaly
	itemRemote   = "remote"   // Unavailable: its warehouse is down
)

// keyItem names the item on the server span, for the reader of a trace.
const keyItem = attribute.Key("stock.item")

// stockServer is the service's interface, as protoc-gen-go-grpc would
// write it; grpc.Server.RegisterService checks the implementation against
// it.
type stockServer interface {
	Lookup(context.Context, *wrapperspb.StringValue) (*wrapperspb.StringValue, error)
}

var stockDesc = grpc.ServiceDesc{
	ServiceName: stockService,
	HandlerType: (*stockServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Lookup", Handler: lookupHandler}},
}

func lookupHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(wrapperspb.StringValue)
	if err := dec(in); err != nil {
		return nil, err
	}
	s := srv.(stockServer)
	if interceptor == nil {
		return s.Lookup(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: lookupMethod}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return s.Lookup(ctx, req.(*wrapperspb.StringValue))
	})
}

// lookup calls Stock/Lookup for item on conn.
func lookup(ctx context.Context, conn grpc.ClientConnInterface, item string) (string, error) {
	out := new(wrapperspb.StringValue)
	if err := conn.Invoke(ctx, lookupMethod, wrapperspb.String(item), out); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

// stock is the inventory behind the service. A stale item starts a refresh,
// which holds the lock while it recomputes, and the lookup then waits for
// the lock: the slowness a snapshot explains.
type stock struct {
	mu     sync.Mutex
	digest [32]byte
}

var _ stockServer = (*stock)(nil)

// Lookup answers the stock of one item.
func (s *stock) Lookup(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	item := in.GetValue()
	trace.SpanFromContext(ctx).SetAttributes(keyItem.String(item))
	switch item {
	case itemFresh:
	case itemStale:
		locked := make(chan struct{})
		go s.refresh(locked)
		<-locked
	case itemRemote:
		return nil, status.Error(codes.Unavailable, "warehouse eu-2 is unreachable")
	default:
		return nil, status.Errorf(codes.NotFound, "no item %q", item)
	}
	d := s.read()
	return wrapperspb.String(item + " " + hex.EncodeToString(d[:4])), nil
}

// refresh recomputes the inventory for 160ms, holding the lock.
func (s *stock) refresh(locked chan<- struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(locked)
	for deadline := time.Now().Add(160 * time.Millisecond); time.Now().Before(deadline); {
		s.digest = sha256.Sum256(s.digest[:])
	}
}

// read returns the inventory's digest: it waits for a refresh under way.
func (s *stock) read() [32]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.digest
}
