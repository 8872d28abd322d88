package otlptest

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Paths and limits of the OTLP/HTTP receiver.
const (
	// TracesPath is where OTLP/HTTP exporters POST traces by default.
	TracesPath = "/v1/traces"
	// maxHTTPBody bounds a request body, decompressed.
	maxHTTPBody = 64 << 20

	contentTypeProto = "application/x-protobuf"
)

// HTTPReceiver is an in-process OTLP/HTTP trace receiver listening on
// 127.0.0.1: it accepts protobuf-encoded ExportTraceServiceRequests,
// optionally gzip-compressed, POSTed to [TracesPath]. Create it with
// [NewHTTPReceiver].
//
// What it accepts lands in the embedded [Receiver], whose methods read it
// (Spans, WaitForSpans, Requests) and whose options apply: WithExportError
// answers with the HTTP status an OTLP/HTTP exporter treats like that gRPC
// code (Unavailable: 503, retried; PermissionDenied: 403, not retried), and
// WithHang holds the request until the client gives up or the receiver is
// closed. The embedded Receiver also keeps serving OTLP/gRPC on its own
// address, Receiver.Endpoint, into the same spans.
type HTTPReceiver struct {
	*Receiver

	lis       net.Listener
	srv       *http.Server
	serveDone chan struct{}
	closeOnce sync.Once
}

// NewHTTPReceiver starts an OTLP/HTTP receiver on 127.0.0.1 with a port
// chosen by the kernel. Like [NewReceiver] it registers a tb.Cleanup that
// closes it, and calls tb.Fatal if it cannot listen.
func NewHTTPReceiver(tb testing.TB, opts ...Option) *HTTPReceiver {
	tb.Helper()
	r := NewReceiver(tb, opts...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("otlptest: listen on 127.0.0.1:0: %v", err)
	}
	h := &HTTPReceiver{Receiver: r, lis: lis, serveDone: make(chan struct{})}
	mux := http.NewServeMux()
	mux.Handle("POST "+TracesPath, http.HandlerFunc(h.export))
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: gracefulStopTimeout}
	go func() {
		defer close(h.serveDone)
		// Serve returns http.ErrServerClosed once closed; any other error
		// means the listener broke, which tests observe as failed exports.
		_ = h.srv.Serve(lis)
	}()
	tb.Cleanup(h.Close) // runs before the Receiver's own cleanup
	return h
}

// Endpoint returns the OTLP/HTTP address, as "127.0.0.1:PORT". Use it with
// otlptracehttp.WithEndpoint plus otlptracehttp.WithInsecure, or as
// OTEL_EXPORTER_OTLP_ENDPOINT="http://" + Endpoint() with
// OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf.
func (h *HTTPReceiver) Endpoint() string {
	return h.lis.Addr().String()
}

// Close stops the receiver: it closes the embedded Receiver, which releases
// requests hung by [WithHang], then shuts the HTTP server down, forcibly if
// requests in flight do not finish within a few seconds. It returns once
// the server's goroutines have exited, and is idempotent.
func (h *HTTPReceiver) Close() {
	h.closeOnce.Do(func() {
		h.Receiver.Close()
		ctx, cancel := context.WithTimeout(context.Background(), gracefulStopTimeout)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			_ = h.srv.Close()
		}
		<-h.serveDone
	})
}

// export handles one OTLP/HTTP export request through the Receiver's
// Export, so that both protocols record and misbehave alike.
func (h *HTTPReceiver) export(w http.ResponseWriter, req *http.Request) {
	if ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type")); ct != contentTypeProto {
		writeStatus(w, http.StatusUnsupportedMediaType, status.New(codes.InvalidArgument, "otlptest: only "+contentTypeProto+" is supported"))
		return
	}
	var body io.Reader = http.MaxBytesReader(w, req.Body, maxHTTPBody)
	switch enc := req.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip":
		gz, err := gzip.NewReader(body)
		if err != nil {
			writeStatus(w, http.StatusBadRequest, status.Newf(codes.InvalidArgument, "otlptest: gzip: %v", err))
			return
		}
		defer gz.Close()
		body = io.LimitReader(gz, maxHTTPBody+1)
	default:
		writeStatus(w, http.StatusUnsupportedMediaType, status.Newf(codes.InvalidArgument, "otlptest: unsupported Content-Encoding %q", enc))
		return
	}
	data, err := io.ReadAll(body)
	if err == nil && len(data) > maxHTTPBody {
		err = errors.New("body too large")
	}
	if err != nil {
		writeStatus(w, http.StatusBadRequest, status.Newf(codes.InvalidArgument, "otlptest: reading the body: %v", err))
		return
	}
	var in coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &in); err != nil {
		writeStatus(w, http.StatusBadRequest, status.Newf(codes.InvalidArgument, "otlptest: decoding the body: %v", err))
		return
	}
	out, err := traceServer{r: h.Receiver}.Export(req.Context(), &in)
	if err != nil {
		s := status.Convert(err)
		writeStatus(w, httpStatus(s.Code()), s)
		return
	}
	writeProto(w, http.StatusOK, out)
}

// httpStatus is the HTTP status that tells an OTLP/HTTP exporter what code
// tells an OTLP/gRPC one: the retryable codes map to the statuses the
// OTLP/HTTP specification retries (429, 502, 503, 504).
func httpStatus(c codes.Code) int {
	switch c {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable, codes.Aborted:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded, codes.Canceled:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// writeStatus answers with code and, as the OTLP/HTTP specification asks
// of a failure, the google.rpc.Status protobuf as the body.
func writeStatus(w http.ResponseWriter, code int, s *status.Status) {
	writeProto(w, code, s.Proto())
}

func writeProto(w http.ResponseWriter, code int, m proto.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentTypeProto)
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
