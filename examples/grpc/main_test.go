package main

import (
	"bytes"
	"context"
	"log"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/internal/otlptest"
	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// handled collects what the package reports to otel.Handle.
var handled *testutil.ErrorSink

func TestMain(m *testing.M) {
	handled = testutil.InstallErrorSink()
	testutil.VerifyTestMain(m, handled)
}

// receiver is what the tests read spans from: an OTLP/gRPC or an OTLP/HTTP
// receiver.
type receiver interface {
	Endpoint() string
	WaitForSpans(context.Context, func([]otlptest.Span) bool) ([]otlptest.Span, error)
}

// TestExample runs the example in-process for one round of lookups,
// exporting over each protocol a user can choose with
// OTEL_EXPORTER_OTLP_PROTOCOL to a real receiver on loopback, and checks
// what crossed the wire: the slow lookup's server span is linked to a
// snapshot whose verdict names the mutex its handler waited on and the
// refresh that held it; its client span shares the snapshot, with a
// verdict that says the client was blocked in gRPC's wait for the
// server's answer; the failing lookup fires the gRPC status-code trigger
// on otelgrpc's own attributes, on both sides; NotFound and the fast
// lookup are no anomalies. The tests use t.Setenv: not parallel, and one
// flight recorder at a time.
func TestExample(t *testing.T) {
	for _, tt := range []struct {
		name     string
		protocol string
		recv     func(*testing.T) receiver
	}{
		{"OTLP/gRPC", "grpc", func(t *testing.T) receiver { return otlptest.NewReceiver(t) }},
		{"OTLP/HTTP", "http/protobuf", func(t *testing.T) receiver { return otlptest.NewHTTPReceiver(t) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			recv := tt.recv(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+recv.Endpoint())
			t.Setenv(envProtocol, tt.protocol)
			t.Setenv("OTEL_SERVICE_NAME", "grpc-example-test")
			t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
			logs := captureLog(t)

			snapAddr := testutil.FreeAddr(t)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			// 700ms apart: the failing lookup comes 1.4s after the slow
			// one, past the recorder's minimum interval.
			require.NoError(t, run(ctx, config{
				addr: "127.0.0.1:0", snapAddr: snapAddr, store: t.TempDir(),
				every: 700 * time.Millisecond, rounds: 1,
			}))
			require.Contains(t, logs.String(), "spans exported over "+map[string]string{
				"grpc": "OTLP/gRPC", "http/protobuf": "OTLP/HTTP (protobuf)",
			}[tt.protocol])

			// run returned after shutting tracing down: everything has
			// been exported. The wait only bounds a slow receiver.
			waitCtx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			spans, err := recv.WaitForSpans(waitCtx, func(s []otlptest.Span) bool {
				return len(lookups(s)) == 4 && attachment(s, lookups(s)[itemRemote].server) != nil
			})
			require.NoError(t, err, "every lookup's spans and the attachments arrive")
			got := lookups(spans)
			for item, l := range got {
				require.NotNil(t, l.client, "%s: the client span arrived", item)
				assert.Equal(t, "grpc-example-test", l.server.Resource["service.name"])
				assert.Equal(t, "grpc", l.server.Attributes["rpc.system.name"], "%s: otelgrpc's attributes", item)
				assert.Equal(t, tracepb.Span_SPAN_KIND_SERVER, l.server.Kind)
				assert.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, l.client.Kind)
				assert.Equal(t, l.client.TraceID, l.server.TraceID, "%s: the trace crosses the call", item)
			}

			t.Run("slow lookup", func(t *testing.T) {
				l := got[itemStale]
				id := assertSnapshot(t, spans, l.server, spanprocessor.ReasonLatency, "http://"+snapAddr+"/snapshots/")
				assert.Equal(t, id, assertSnapshot(t, spans, l.client, spanprocessor.ReasonLatency, "http://"+snapAddr+"/snapshots/"),
					"the client span shares the server span's snapshot")

				// Functions of package main are named after its import path
				// in a test binary: grpc.(*stock).read rather than
				// main.(*stock).read.
				server := verdict(t, spans, l.server)
				assert.Regexp(t, `sync\.Mutex in (main|grpc)\.\(\*stock\)\.read\b`, server, "the handler's wait")
				assert.Regexp(t, `released by goroutine \d+ in (main|grpc)\.\(\*stock\)\.refresh\b`, server, "and who held the lock")

				// The client goroutine did nothing but wait: blocked (not
				// running, not runnable) for most of the call, inside gRPC's
				// transport, woken by the goroutine that reads the server's
				// answer off the connection.
				client := verdict(t, spans, l.client)
				assert.Contains(t, client, "blocked", "the client waited")
				assert.Contains(t, client, "transport.", "in gRPC's transport")
				assert.Contains(t, client, "waiting on the network", "for the connection to the server")
				assert.NotContains(t, client, "sync.Mutex", "the mutex is the server's story")
				att := attachment(spans, l.client)
				blocked := 0.0
				for k, v := range att.Attributes {
					if ms, ok := v.(float64); ok && strings.HasPrefix(k, analysis.DiagnosisBucketKeyPrefix+"blocked.") {
						blocked += ms
					}
				}
				dur := float64(l.client.EndTime.Sub(l.client.StartTime)) / float64(time.Millisecond)
				assert.Greater(t, blocked, 0.8*dur, "blocked for most of the call: %v", att.Attributes)
				assert.Contains(t, logs.String(), client, "the verdict is logged")
			})

			t.Run("failing lookup", func(t *testing.T) {
				l := got[itemRemote]
				for _, s := range []otlptest.Span{l.server, l.client} {
					assert.Equal(t, "UNAVAILABLE", s.Attributes["rpc.response.status_code"], "the attribute otelgrpc sets")
					assert.NotContains(t, s.Attributes, "rpc.grpc.status_code", "and not the old one")
					assert.Equal(t, tracepb.Status_STATUS_CODE_ERROR, s.StatusCode)
					// ErrorStatus is off: the status code alone fired.
					assertSnapshot(t, spans, s, spanprocessor.ReasonGRPCError, "http://"+snapAddr+"/snapshots/")
					verdict(t, spans, s)
				}
				assert.Contains(t, logs.String(), "("+spanprocessor.ReasonGRPCError+")", "the anomaly is logged")
			})

			t.Run("no anomaly", func(t *testing.T) {
				for _, item := range []string{itemFresh, itemUnlisted} {
					for _, s := range []otlptest.Span{got[item].server, got[item].client} {
						assert.NotContains(t, s.Attributes, string(otelfr.SnapshotReasonKey), "%s %s", item, s.Kind)
					}
				}
				assert.Equal(t, "NOT_FOUND", got[itemUnlisted].client.Attributes["rpc.response.status_code"])
				assert.Equal(t, tracepb.Status_STATUS_CODE_ERROR, got[itemUnlisted].client.StatusCode,
					"otelgrpc marks the client span Error, which is why the example leaves ErrorStatus out")
			})
		})
	}
}

// TestNewSpanExporter checks the choice of exporter by the standard
// variables, as a user switches to OTLP/HTTP.
func TestNewSpanExporter(t *testing.T) {
	for _, tt := range []struct {
		name            string
		protocol, trace string
		want, wantErr   string
	}{
		{"default", "", "", "OTLP/gRPC", ""},
		{"grpc", "grpc", "", "OTLP/gRPC", ""},
		{"http/protobuf", "http/protobuf", "", "OTLP/HTTP (protobuf)", ""},
		{"http/json", "http/json", "", "OTLP/HTTP (json)", ""},
		{"traces protocol wins", "grpc", "http/protobuf", "OTLP/HTTP (protobuf)", ""},
		{"unknown", "http/xml", "", "", envProtocol + `="http/xml"`},
		{"unknown traces protocol", "grpc", "thrift", "", envTracesProtocol + `="thrift"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
			t.Setenv(envProtocol, tt.protocol)
			t.Setenv(envTracesProtocol, tt.trace)
			exp, got, err := newSpanExporter(t.Context())
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			require.NoError(t, exp.Shutdown(t.Context()))
		})
	}
}

// call holds the two spans of one Stock/Lookup call.
type call struct{ server, client otlptest.Span }

// lookups returns the calls whose server and client spans both arrived,
// by item. The server span names its item; the client span is its parent.
func lookups(spans []otlptest.Span) map[string]call {
	byID := map[string]otlptest.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	got := map[string]call{}
	for _, s := range spans {
		item, ok := s.Attributes[string(keyItem)].(string)
		if !ok || s.Kind != tracepb.Span_SPAN_KIND_SERVER {
			continue
		}
		if c, ok := byID[s.ParentSpanID]; ok && c.Kind == tracepb.Span_SPAN_KIND_CLIENT {
			got[item] = call{server: s, client: c}
		}
	}
	return got
}

// attachment returns the attachment span of s, or nil.
func attachment(spans []otlptest.Span, s otlptest.Span) *otlptest.Span {
	for i := range spans {
		if a := &spans[i]; a.Name == otelfr.AttachmentSpanName && a.ParentSpanID == s.SpanID && s.SpanID != "" {
			return a
		}
	}
	return nil
}

// assertSnapshot checks that s is anomalous for reason and linked to a
// snapshot served under base, with an attachment span that is its child,
// links to it and carries the snapshot's attributes; it returns the
// snapshot's ID.
func assertSnapshot(t *testing.T, spans []otlptest.Span, s otlptest.Span, reason, base string) string {
	t.Helper()
	assert.Equal(t, reason, s.Attributes[string(otelfr.SnapshotReasonKey)], "%s span: %v", s.Kind, s.Attributes)
	id, _ := s.Attributes[string(otelfr.SnapshotIDKey)].(string)
	require.NotEmpty(t, id, "%s span has a snapshot: %v", s.Kind, s.Attributes)
	assert.Equal(t, base+id+"?span="+s.SpanID, s.Attributes[string(otelfr.SnapshotURLKey)])
	att := attachment(spans, s)
	require.NotNil(t, att, "%s span has an attachment", s.Kind)
	assert.Equal(t, s.TraceID, att.TraceID)
	require.Len(t, att.Links, 1)
	assert.Equal(t, s.SpanID, att.Links[0].SpanID)
	assert.Equal(t, id, att.Attributes[string(otelfr.SnapshotIDKey)])
	assert.Equal(t, reason, att.Attributes[string(otelfr.SnapshotReasonKey)])
	assert.Positive(t, att.Attributes[string(otelfr.SnapshotSizeKey)])
	assert.NotEmpty(t, att.Attributes[string(otelfr.SnapshotSHA256Key)])
	return id
}

// verdict returns the diagnosis on s's attachment, failing if it has none.
func verdict(t *testing.T, spans []otlptest.Span, s otlptest.Span) string {
	t.Helper()
	att := attachment(spans, s)
	require.NotNil(t, att)
	v, _ := att.Attributes[string(analysis.DiagnosisVerdictKey)].(string)
	require.NotEmpty(t, v, "%s span's attachment has a verdict: %v", s.Kind, att.Attributes)
	t.Logf("%s span verdict: %s", s.Kind, v)
	return v
}

// captureLog sends the standard logger to a buffer until the test ends,
// and to the test's log when it fails.
func captureLog(t *testing.T) *syncBuffer {
	t.Helper()
	var b syncBuffer
	log.SetOutput(&b)
	t.Cleanup(func() {
		log.SetOutput(os.Stderr)
		if t.Failed() {
			t.Logf("the example's log:\n%s", b.String())
		}
	})
	return &b
}

// syncBuffer is a bytes.Buffer safe for the example's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
