package otlptest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/otelfr/otel-flightrecorder/internal/otlptest"
)

// newHTTPExporter returns an insecure otlptracehttp exporter aimed at r,
// shut down when the test ends.
func newHTTPExporter(t *testing.T, r *otlptest.HTTPReceiver, opts ...otlptracehttp.Option) *otlptrace.Exporter {
	t.Helper()
	opts = append([]otlptracehttp.Option{
		otlptracehttp.WithEndpoint(r.Endpoint()),
		otlptracehttp.WithInsecure(),
	}, opts...)
	exp, err := otlptracehttp.New(t.Context(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = exp.Shutdown(ctx)
	})
	return exp
}

var noHTTPRetry = otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false})

// post sends body to r's traces path and returns the status and the
// google.rpc.Status of a failure.
func post(t *testing.T, r *otlptest.HTTPReceiver, contentType string, body []byte) (int, *status.Status) {
	t.Helper()
	req, err := http.NewRequestWithContext(waitCtx(t), http.MethodPost, "http://"+r.Endpoint()+otlptest.TracesPath, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "application/x-protobuf", resp.Header.Get("Content-Type"))
	var s status.Status
	if resp.StatusCode != http.StatusOK {
		require.NoError(t, proto.Unmarshal(b, &s), "the body is a google.rpc.Status")
	}
	return resp.StatusCode, &s
}

func TestHTTPEndpointIsLoopback(t *testing.T) {
	t.Parallel()
	r := otlptest.NewHTTPReceiver(t)

	host, port, err := net.SplitHostPort(r.Endpoint())
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)
	require.NotEqual(t, "0", port)
	require.NotEqual(t, r.Receiver.Endpoint(), r.Endpoint(), "the gRPC side has its own address")
}

// TestHTTPSpansRoundTrip exports through otlptracehttp, plain and gzipped,
// and reads back what crossed the wire.
func TestHTTPSpansRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []otlptracehttp.Compression{otlptracehttp.NoCompression, otlptracehttp.GzipCompression} {
		t.Run(map[otlptracehttp.Compression]string{otlptracehttp.NoCompression: "plain", otlptracehttp.GzipCompression: "gzip"}[c], func(t *testing.T) {
			t.Parallel()
			r := otlptest.NewHTTPReceiver(t)
			tp := newProvider(t,
				sdktrace.WithSyncer(newHTTPExporter(t, r, otlptracehttp.WithCompression(c))),
				sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "http-svc"))),
			)
			ctx, parent := tp.Tracer("http/scope").Start(t.Context(), "parent",
				trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("str", "v"), attribute.Int("int", 42)))
			_, child := tp.Tracer("http/scope").Start(ctx, "child")
			child.End()
			parent.End()

			spans, err := r.WaitForSpans(waitCtx(t), atLeast(2))
			require.NoError(t, err)
			require.Equal(t, 2, r.Requests())
			p, ch := byName(t, spans, "parent"), byName(t, spans, "child")
			require.Equal(t, parent.SpanContext().SpanID().String(), p.SpanID)
			require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, p.Kind)
			require.Equal(t, map[string]any{"str": "v", "int": int64(42)}, p.Attributes)
			require.Equal(t, "http-svc", p.Resource["service.name"])
			require.Equal(t, "http/scope", p.ScopeName)
			require.Equal(t, p.SpanID, ch.ParentSpanID)
		})
	}
}

// TestHTTPEndpointFromEnv points the exporter at the receiver as a user
// would, with the standard variables. It uses t.Setenv: not parallel.
func TestHTTPEndpointFromEnv(t *testing.T) {
	r := otlptest.NewHTTPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+r.Endpoint())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")

	exp, err := otlptracehttp.New(t.Context())
	require.NoError(t, err)
	tp := newProvider(t, sdktrace.WithSyncer(exp))
	_, s := tp.Tracer("env").Start(t.Context(), "via-env")
	s.End()

	spans, err := r.WaitForSpans(waitCtx(t), atLeast(1))
	require.NoError(t, err)
	require.Equal(t, "via-env", spans[0].Name)
}

// TestHTTPExportError checks that an injected gRPC code reaches an
// OTLP/HTTP exporter as the HTTP status it treats alike: retried or not.
func TestHTTPExportError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code     codes.Code
		status   int
		retried  bool
		mentions string
	}{
		{codes.PermissionDenied, http.StatusForbidden, false, "403"},
		{codes.InvalidArgument, http.StatusBadRequest, false, "400"},
		{codes.Unavailable, http.StatusServiceUnavailable, true, "injected export error"},
		{codes.ResourceExhausted, http.StatusTooManyRequests, true, "injected export error"},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			t.Parallel()
			r := otlptest.NewHTTPReceiver(t, otlptest.WithExportError(tt.code))

			code, s := post(t, r, "application/x-protobuf", nil)
			require.Equal(t, tt.status, code)
			require.Equal(t, int32(tt.code), s.GetCode())
			require.Contains(t, s.GetMessage(), "injected export error")

			// With retries on, a retryable status is sent again until the
			// exporter's deadline; the others fail at once.
			exp := newHTTPExporter(t, r, otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
				Enabled: true, InitialInterval: 10 * time.Millisecond, MaxInterval: 10 * time.Millisecond, MaxElapsedTime: 200 * time.Millisecond,
			}))
			err := exp.ExportSpans(waitCtx(t), tracetest.SpanStubs{{Name: "rejected"}}.Snapshots())
			require.ErrorContains(t, err, tt.mentions)
			if tt.retried {
				require.Greater(t, r.Requests(), 2, "retried")
			} else {
				require.Equal(t, 2, r.Requests(), "not retried")
			}
			require.Empty(t, r.Spans(), "rejected spans are not recorded")
		})
	}
}

func TestHTTPRejectsOtherEncodings(t *testing.T) {
	t.Parallel()
	r := otlptest.NewHTTPReceiver(t)

	code, _ := post(t, r, "application/json", []byte(`{}`))
	require.Equal(t, http.StatusUnsupportedMediaType, code, "JSON is not supported")
	code, s := post(t, r, "application/x-protobuf", []byte("not a protobuf"))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, s.GetMessage(), "decoding")
	require.Zero(t, r.Requests(), "neither reached Export")

	body, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{})
	require.NoError(t, err)
	code, _ = post(t, r, "application/x-protobuf", body)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 1, r.Requests())
}

// TestHTTPHang checks that a hung export ends when the exporter gives up,
// and that Close releases one still in flight.
func TestHTTPHang(t *testing.T) {
	t.Parallel()
	r := otlptest.NewHTTPReceiver(t, otlptest.WithHang())

	exp := newHTTPExporter(t, r, noHTTPRetry, otlptracehttp.WithTimeout(100*time.Millisecond))
	start := time.Now()
	err := exp.ExportSpans(waitCtx(t), tracetest.SpanStubs{{Name: "hung"}}.Snapshots())
	require.Error(t, err)
	require.Less(t, time.Since(start), waitTimeout/2, "the exporter's timeout ended it")

	errc := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(waitCtx(t), http.MethodPost, "http://"+r.Endpoint()+otlptest.TracesPath, http.NoBody)
		if err == nil {
			req.Header.Set("Content-Type", "application/x-protobuf")
			var resp *http.Response
			if resp, err = http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					err = fmt.Errorf("unexpected status %s", resp.Status)
				}
			}
		}
		errc <- err
	}()
	_, err = r.WaitForSpans(waitCtx(t), func([]otlptest.Span) bool { return r.Requests() == 2 })
	require.NoError(t, err)
	r.Close()
	require.NoError(t, <-errc, "Close answers the hung request with 503")
}
