package analysis_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// TestErrorSpanGetsLatencyVerdict pins issue 13, item 4: a 57 µs error
// span's verdict said "100% of 57 µs running in syscall.write" and nothing
// of the error. A failed span's verdict now leads with the failure (status
// description, exception, HTTP or gRPC status and, for a client span, the
// failing downstream) and gives the timing second, unchanged; a span that
// did not fail keeps its timing verdict alone.
func TestErrorSpanGetsLatencyVerdict(t *testing.T) {
	tests := []struct {
		name  string
		kind  trace.SpanKind
		attrs []attribute.KeyValue
		fail  func(s trace.Span)
		// want is the error summary, "" for a span that did not fail.
		want string
	}{
		{
			name: "status error with description",
			kind: trace.SpanKindServer,
			fail: func(s trace.Span) { s.SetStatus(codes.Error, "payment declined:\n\tcard expired") },
			want: "payment declined: card expired",
		},
		{
			name: "exception event",
			kind: trace.SpanKindInternal,
			fail: func(s trace.Span) {
				s.RecordError(&fs.PathError{Op: "open", Path: "/var/lib/stock.db", Err: syscall.ENOENT})
			},
			want: "*fs.PathError: open /var/lib/stock.db: no such file or directory",
		},
		{
			name: "HTTP 5xx client span",
			kind: trace.SpanKindClient,
			attrs: []attribute.KeyValue{
				attribute.String("http.request.method", "GET"),
				attribute.String("url.full", "http://inventory:8080/stock?sku=42"),
				attribute.String("server.address", "inventory"),
				attribute.Int("server.port", 8080),
				attribute.Int("http.response.status_code", 503),
			},
			fail: func(s trace.Span) { s.SetStatus(codes.Error, "") },
			want: "HTTP 503 from GET http://inventory:8080/stock",
		},
		{
			name: "gRPC status code client span",
			kind: trace.SpanKindClient,
			attrs: []attribute.KeyValue{
				attribute.String("rpc.system", "grpc"),
				attribute.String("rpc.service", "inventory.Inventory"),
				attribute.String("rpc.method", "Reserve"),
				attribute.String("server.address", "inventory"),
				attribute.Int("server.port", 50051),
				attribute.Int("rpc.grpc.status_code", 14),
			},
			fail: func(s trace.Span) { s.SetStatus(codes.Error, "connection refused") },
			want: "Unavailable from inventory.Inventory/Reserve (server.address inventory:50051): connection refused",
		},
		{
			name: "span that did not fail",
			kind: trace.SpanKindServer,
			attrs: []attribute.KeyValue{
				attribute.Int("http.response.status_code", 404), // a client's error, not the server's
				attribute.Int("rpc.grpc.status_code", 5),        // NotFound: no error on a server span
			},
		},
	}

	r := startRecorder(t, defaultRecorder)
	tracer := r.tp.Tracer("analysis_test")
	spans := make([]sdktrace.ReadOnlySpan, len(tests))
	for i, tt := range tests {
		ctx, s := tracer.Start(context.Background(), tt.name, trace.WithSpanKind(tt.kind), trace.WithAttributes(tt.attrs...))
		logSpan(ctx, "start", s.SpanContext())
		time.Sleep(2 * time.Millisecond)
		if tt.fail != nil {
			tt.fail(s)
		}
		logSpan(ctx, "end", s.SpanContext())
		s.End()
		spans[i] = s.(sdktrace.ReadOnlySpan)
	}
	data := r.snapshot()

	dg := analysis.NewDiagnoser()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ro := spans[i]
			sc := ro.SpanContext()
			timing, err := analysis.Analyze(data, analysis.Span{
				TraceID: sc.TraceID(), SpanID: sc.SpanID(), Start: ro.StartTime(), End: ro.EndTime(),
			})
			require.NoError(t, err)
			require.Contains(t, timing.Verdict, "% of ")

			verdict, attrs, _, err := dg.Diagnose(t.Context(), data, ro)
			require.NoError(t, err)
			t.Logf("verdict: %s", verdict)
			want := timing.Verdict
			if tt.want != "" {
				want = "error: " + tt.want + "; then " + timing.Verdict
			}
			assert.Equal(t, want, verdict, "the error first, the timing second")
			assert.Equal(t, verdict, attrMap(attrs)[analysis.DiagnosisVerdictKey].AsString())
		})
	}
}

// TestDiagnoserFailedSpanNotFound: a failed span that the snapshot does not
// hold still says how it failed.
func TestDiagnoserFailedSpanNotFound(t *testing.T) {
	r := startRecorder(t, defaultRecorder)
	_, s := r.tp.Tracer("analysis_test").Start(context.Background(), "unlogged")
	s.SetStatus(codes.Error, "boom")
	s.End()
	data := r.snapshot()

	verdict, attrs, events, err := analysis.NewDiagnoser().Diagnose(t.Context(), data, s.(sdktrace.ReadOnlySpan))
	assert.ErrorIs(t, err, analysis.ErrSpanNotFound)
	assert.Equal(t, "error: boom", verdict)
	assert.Equal(t, []attribute.KeyValue{
		analysis.DiagnosisStatusKey.String("not_found"),
		analysis.DiagnosisVerdictKey.String("error: boom"),
	}, attrs)
	assert.Empty(t, events)
}

type stockError struct{}

func (stockError) Error() string { return "out of stock" }

func TestErrorSummary(t *testing.T) {
	errStatus := sdktrace.Status{Code: codes.Error}
	exception := func(typ, msg string) sdktrace.Event {
		return sdktrace.Event{Name: "exception", Attributes: []attribute.KeyValue{
			attribute.String("exception.type", typ), attribute.String("exception.message", msg),
		}}
	}
	long := strings.Repeat("x", 1000)
	tests := []struct {
		name string
		span tracetest.SpanStub
		want string
	}{
		{"unset status", tracetest.SpanStub{}, ""},
		{"ok status", tracetest.SpanStub{Status: sdktrace.Status{Code: codes.Ok}}, ""},
		{"error without detail", tracetest.SpanStub{Status: errStatus}, "status Error"},
		{"exception without detail", tracetest.SpanStub{Events: []sdktrace.Event{{Name: "exception"}}}, "exception"},
		{
			"RPC service without method",
			tracetest.SpanStub{SpanKind: trace.SpanKindClient, Attributes: []attribute.KeyValue{attribute.String("rpc.service", "inventory.Inventory"), attribute.Int("rpc.grpc.status_code", 4)}},
			"DeadlineExceeded from inventory.Inventory",
		},
		{"description", tracetest.SpanStub{Status: sdktrace.Status{Code: codes.Error, Description: "  disk\r\nfull \x00"}}, "disk full"},
		{
			"last exception wins, generic Go type left out",
			tracetest.SpanStub{Events: []sdktrace.Event{exception("*errors.errorString", "first"), {Name: "retry"}, exception("*fmt.wrapError", "reserve: out of stock")}},
			"reserve: out of stock",
		},
		{
			"exception type alone",
			tracetest.SpanStub{Events: []sdktrace.Event{{Name: "exception", Attributes: []attribute.KeyValue{attribute.String("exception.type", "java.lang.OutOfMemoryError")}}}},
			"java.lang.OutOfMemoryError",
		},
		{
			"description repeating the exception",
			tracetest.SpanStub{Status: sdktrace.Status{Code: codes.Error, Description: "out of stock"}, Events: []sdktrace.Event{exception("app.StockError", "out of stock")}},
			"app.StockError: out of stock",
		},
		{
			"description containing the exception",
			tracetest.SpanStub{Status: sdktrace.Status{Code: codes.Error, Description: "reserve sku 42: out of stock"}, Events: []sdktrace.Event{exception("*errors.errorString", "out of stock")}},
			"reserve sku 42: out of stock",
		},
		{
			"description and a different exception",
			tracetest.SpanStub{Status: sdktrace.Status{Code: codes.Error, Description: "reserve failed"}, Events: []sdktrace.Event{exception("*net.OpError", "dial tcp: connection refused")}},
			"reserve failed (exception *net.OpError: dial tcp: connection refused)",
		},
		{
			"HTTP server 5xx without error status",
			tracetest.SpanStub{SpanKind: trace.SpanKindServer, Attributes: []attribute.KeyValue{attribute.Int("http.response.status_code", 502)}},
			"HTTP 502",
		},
		{
			"HTTP server 4xx",
			tracetest.SpanStub{SpanKind: trace.SpanKindServer, Attributes: []attribute.KeyValue{attribute.Int("http.response.status_code", 429)}},
			"",
		},
		{
			"HTTP client 4xx, old conventions",
			tracetest.SpanStub{SpanKind: trace.SpanKindClient, Attributes: []attribute.KeyValue{
				attribute.String("http.method", "POST"), attribute.String("http.url", "https://pay.example/charge#frag"), attribute.Int("http.status_code", 402),
			}},
			"HTTP 402 from POST https://pay.example/charge",
		},
		{
			"HTTP client, ok status wins over the code",
			tracetest.SpanStub{SpanKind: trace.SpanKindClient, Status: sdktrace.Status{Code: codes.Ok}, Attributes: []attribute.KeyValue{attribute.Int("http.response.status_code", 404)}},
			"",
		},
		{
			"HTTP client without response, address only",
			tracetest.SpanStub{SpanKind: trace.SpanKindClient, Status: sdktrace.Status{Code: codes.Error, Description: "dial tcp: connection refused"}, Attributes: []attribute.KeyValue{
				attribute.String("http.request.method", "GET"), attribute.String("server.address", "inventory"), attribute.Int("server.port", 8080),
			}},
			"GET inventory:8080: dial tcp: connection refused",
		},
		{
			"downstream only on client spans",
			tracetest.SpanStub{SpanKind: trace.SpanKindServer, Status: errStatus, Attributes: []attribute.KeyValue{
				attribute.String("rpc.service", "orders.Orders"), attribute.String("rpc.method", "Place"), attribute.Int("rpc.grpc.status_code", 13),
			}},
			"Internal",
		},
		{
			"gRPC client, any code but OK",
			tracetest.SpanStub{SpanKind: trace.SpanKindClient, Attributes: []attribute.KeyValue{
				attribute.String("rpc.service", "inventory.Inventory"), attribute.String("rpc.method", "Get"), attribute.Int("rpc.grpc.status_code", 5),
			}},
			"NotFound from inventory.Inventory/Get",
		},
		{
			"gRPC client, OK",
			tracetest.SpanStub{SpanKind: trace.SpanKindClient, Attributes: []attribute.KeyValue{attribute.Int("rpc.grpc.status_code", 0)}},
			"",
		},
		{
			"gRPC, newer conventions",
			tracetest.SpanStub{SpanKind: trace.SpanKindClient, Status: sdktrace.Status{Code: codes.Error, Description: "context deadline exceeded"}, Attributes: []attribute.KeyValue{
				attribute.String("rpc.method", "inventory.Inventory/Reserve"), attribute.String("server.address", "10.0.0.7"),
				attribute.String("rpc.response.status_code", "DEADLINE_EXCEEDED"),
			}},
			"DeadlineExceeded from inventory.Inventory/Reserve (server.address 10.0.0.7): context deadline exceeded",
		},
		{
			"RPC status that is no gRPC code",
			tracetest.SpanStub{SpanKind: trace.SpanKindClient, Status: errStatus, Attributes: []attribute.KeyValue{
				attribute.String("rpc.method", "eth_call"), attribute.String("rpc.response.status_code", "-32602"),
			}},
			"-32602 from eth_call",
		},
		{
			"gRPC server code unknown to the table",
			tracetest.SpanStub{SpanKind: trace.SpanKindServer, Status: errStatus, Attributes: []attribute.KeyValue{attribute.Int("rpc.grpc.status_code", 20)}},
			"gRPC code 20",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, analysis.ErrorSummary(tt.span.Snapshot()))
		})
	}

	t.Run("bounded", func(t *testing.T) {
		s := tracetest.SpanStub{
			SpanKind: trace.SpanKindClient,
			Status:   sdktrace.Status{Code: codes.Error, Description: long + "\n" + long},
			Attributes: []attribute.KeyValue{
				attribute.String("http.request.method", "GET"),
				attribute.String("url.full", "http://inventory/"+long),
				attribute.Int("http.response.status_code", 500),
			},
			Events: []sdktrace.Event{exception("é"+long, "\xff"+strings.Repeat("\n", 5000)+long)},
		}
		got := analysis.ErrorSummary(s.Snapshot())
		t.Logf("summary: %s", got)
		assert.LessOrEqual(t, len(got), 400)
		assert.True(t, utf8.ValidString(got))
		assert.False(t, strings.ContainsFunc(got, unicode.IsControl), "one line")
		assert.True(t, strings.HasPrefix(got, "HTTP 500 from GET http://inventory/xxx"), got)
		assert.True(t, strings.HasSuffix(got, "…"), "the cut is marked")
	})

	t.Run("a real span", func(t *testing.T) {
		tp := sdktrace.NewTracerProvider()
		defer func() { require.NoError(t, tp.Shutdown(context.Background())) }()
		_, s := tp.Tracer("analysis_test").Start(context.Background(), "reserve")
		s.RecordError(fmt.Errorf("reserve: %w", stockError{}))
		s.RecordError(errors.Join(stockError{}))
		s.End()
		assert.Equal(t, "out of stock", analysis.ErrorSummary(s.(sdktrace.ReadOnlySpan)))
	})
	assert.Empty(t, analysis.ErrorSummary(nil))
}

// TestAnalyzeSpanError: Analyze leads the verdict with a caller's
// Span.Error, kept on one line and bounded like ErrorSummary's, and the
// timing follows unchanged.
func TestAnalyzeSpanError(t *testing.T) {
	data, span := recording(t, func(ctx context.Context) { time.Sleep(time.Millisecond) })
	timing, err := analysis.Analyze(data, span)
	require.NoError(t, err)
	assert.Empty(t, timing.Span.Error)

	span.Error = "first line\nsecond line " + strings.Repeat("y", 1000)
	d, err := analysis.Analyze(data, span)
	require.NoError(t, err)
	assert.Equal(t, "error: "+d.Span.Error+"; then "+timing.Verdict, d.Verdict)
	assert.LessOrEqual(t, len(d.Span.Error), 400)
	assert.True(t, strings.HasPrefix(d.Span.Error, "first line second line yyy"), d.Span.Error)
	assert.True(t, strings.HasPrefix(d.Verdict, "error: "+d.Span.Error+"; then "), d.Verdict)
	assert.NotContains(t, d.Verdict, "\n")
}
