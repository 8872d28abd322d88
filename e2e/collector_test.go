//go:build e2e

package e2e

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.yaml.in/yaml/v3"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// The traffic TestCollector sends: collectorTraces traces of three spans,
// of which every anomalyEvery-th is anomalous, alternately slow (its root
// span) and failed (a child); the last one sent is anomalous. The
// collector decides each trace decisionWait after its first span.
const (
	collectorTraces  = 400
	anomalyEvery     = 20
	decisionWait     = 2 * time.Second
	collectorService = "otelfr-e2e-collector"
	snapshotBase     = "http://127.0.0.1:8081/snapshots/"
)

// TestCollector runs Jaeger twice: as a tail-sampling collector with
// deploy/collector/config.yaml, in front of a Jaeger that stores traces
// with deploy/jaeger/config.yaml. It sends the collector the traces of a
// real otelfr pipeline and checks through the storing Jaeger's query API
// that every trace holding a snapshot arrived whole, with its attachment
// span, and that the policy dropped most of the other traces.
func TestCollector(t *testing.T) {
	t.Cleanup(client.CloseIdleConnections)
	bin := jaegerBinary(t)
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	collectorConfig := filepath.Join(root, "deploy", "collector", "config.yaml")
	percent := checkCollectorPolicy(t, collectorConfig)

	queryAddr, storeOTLP := testutil.FreeAddr(t), testutil.FreeAddr(t)
	storeAddrs := []string{queryAddr, storeOTLP, testutil.FreeAddr(t), testutil.FreeAddr(t)}
	storage := start(t, "jaeger", []string{"JAEGER_LISTEN_HOST=127.0.0.1"}, bin,
		"--config="+filepath.Join(root, "deploy", "jaeger", "config.yaml"),
		"--set=extensions.jaeger_query.ui.config_file="+filepath.Join(root, "deploy", "jaeger", "ui.json"),
		"--set=extensions.jaeger_query.http.endpoint="+queryAddr,
		"--set=receivers.otlp.protocols.grpc.endpoint="+storeOTLP,
		"--set=extensions.jaeger_query.grpc.endpoint="+storeAddrs[2],
		"--set=receivers.otlp.protocols.http.endpoint="+storeAddrs[3],
	)
	collectorAddrs := []string{testutil.FreeAddr(t), testutil.FreeAddr(t)}
	collector := start(t, "collector", []string{"JAEGER_LISTEN_HOST=127.0.0.1"}, bin,
		"--config="+collectorConfig,
		"--set=receivers.otlp.protocols.grpc.endpoint="+collectorAddrs[0],
		"--set=receivers.otlp.protocols.http.endpoint="+collectorAddrs[1],
		"--set=exporters.otlp.endpoint="+storeOTLP,
		"--set=processors.tail_sampling.decision_wait="+decisionWait.String(),
	)
	query := "http://" + queryAddr
	waitForQuery(t, query)
	collector.waitFor(t, "Everything is ready", 60*time.Second)

	startTime := time.Now()
	sent := sendTraces(t, collectorAddrs[0])
	var anomalous, normal []sentTrace
	for _, s := range sent {
		if s.anomaly != "" {
			anomalous = append(anomalous, s)
		} else {
			normal = append(normal, s)
		}
	}

	// The anomalous traces arrive decisionWait after their first span; the
	// last one sent is the last to be decided, so once it is stored every
	// trace is decided, and the kept ones are on their way.
	var stored map[string][]span
	require.Eventually(t, func() bool {
		stored = storedTraces(t, query, startTime)
		for _, s := range anomalous {
			if len(stored[s.traceID]) < len(s.spans)+1 {
				return false
			}
		}
		return true
	}, 60*time.Second, 500*time.Millisecond, "the storing Jaeger has every trace holding a snapshot")
	time.Sleep(2 * time.Second) // what the collector's batch processor still holds
	stored = storedTraces(t, query, startTime)

	t.Run("every trace holding a snapshot arrives whole", func(t *testing.T) {
		for _, s := range anomalous {
			spans := stored[s.traceID]
			var ids []string
			var attachments []span
			byID := map[string]span{}
			for _, sp := range spans {
				byID[sp.SpanID] = sp
				if sp.Name == otelfr.AttachmentSpanName {
					attachments = append(attachments, sp)
				} else {
					ids = append(ids, sp.SpanID)
				}
			}
			assert.ElementsMatch(t, s.spans, ids, "trace %s has every span sent", s.traceID)
			a, ok := byID[s.anomaly]
			if !assert.True(t, ok, "trace %s has its anomalous span", s.traceID) {
				continue
			}
			assert.Equal(t, s.snapshotID, a.Attrs[string(otelfr.SnapshotIDKey)], "%s", a)
			assert.Equal(t, snapshotBase+s.snapshotID+"?span="+s.anomaly, a.Attrs[string(otelfr.SnapshotURLKey)], "%s", a)
			assert.Equal(t, s.reason, a.Attrs[string(otelfr.SnapshotReasonKey)], "%s", a)
			if !assert.Len(t, attachments, 1, "trace %s has one attachment span", s.traceID) {
				continue
			}
			att := attachments[0]
			assert.Equal(t, s.anomaly, att.ParentSpanID, "the attachment is the anomalous span's child")
			assert.Equal(t, []link{{TraceID: s.traceID, SpanID: s.anomaly}}, att.Links, "the attachment links to %s", a)
			assert.Equal(t, collectorService, att.Service, "the attachment is in the span's service")
			for _, k := range []attribute.Key{otelfr.SnapshotIDKey, otelfr.SnapshotURLKey, otelfr.SnapshotReasonKey} {
				assert.Equal(t, a.Attrs[string(k)], att.Attrs[string(k)], "%s of %s", k, a)
			}
		}
	})

	kept := 0
	t.Run("most other traces are sampled away", func(t *testing.T) {
		for _, s := range normal {
			spans, ok := stored[s.traceID]
			if !ok {
				continue
			}
			kept++
			var ids []string
			for _, sp := range spans {
				ids = append(ids, sp.SpanID)
				_, linked := sp.Attrs[string(otelfr.SnapshotIDKey)]
				assert.False(t, linked, "%s has no snapshot", sp)
			}
			assert.ElementsMatch(t, s.spans, ids, "the kept trace %s is whole", s.traceID)
		}
		// A binomial draw with mean percent% of the normal traces (38 of
		// 380 at 10%): 0 and 2.5 times the mean are ten standard
		// deviations away.
		assert.Positive(t, kept, "the probabilistic policy keeps some")
		assert.LessOrEqual(t, float64(kept), 2.5*percent/100*float64(len(normal)), "the policy drops most")
		for id := range stored {
			assert.True(t, slices.ContainsFunc(sent, func(s sentTrace) bool { return s.traceID == id }), "trace %s was sent", id)
		}
	})
	keptAnomalous := 0
	for _, s := range anomalous {
		if _, ok := stored[s.traceID]; ok {
			keptAnomalous++
		}
	}
	t.Logf("sent %d traces (%d with a snapshot, %d normal); stored %d with a snapshot, %d normal (policy: %g%%)",
		len(sent), len(anomalous), len(normal), keptAnomalous, kept, percent)

	collector.stop(t)
	storage.stop(t)
	for _, addr := range append(collectorAddrs, storeAddrs...) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		assert.Error(t, err, "nothing listens on %s any more", addr)
	}
}

// jaegerBinary returns the Jaeger binary named by EnvJaegerBin.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(EnvJaegerBin)
	if bin == "" {
		t.Fatalf("%s is not set: run scripts/e2e.sh, which builds Jaeger and sets it", EnvJaegerBin)
	}
	fi, err := os.Stat(bin)
	require.NoError(t, err, "%s=%s", EnvJaegerBin, bin)
	require.True(t, fi.Mode().IsRegular() && fi.Mode()&0o111 != 0, "%s is an executable file", bin)
	return bin
}

// checkCollectorPolicy checks that the collector's configuration keeps
// traces on the attribute otelfr emits, and returns the percentage of the
// other traces it keeps.
func checkCollectorPolicy(t *testing.T, path string) float64 {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var cfg struct {
		Processors struct {
			TailSampling struct {
				Policies []struct {
					Type            string `yaml:"type"`
					StringAttribute struct {
						Key    string   `yaml:"key"`
						Values []string `yaml:"values"`
						Regex  bool     `yaml:"enabled_regex_matching"`
					} `yaml:"string_attribute"`
					Probabilistic struct {
						Percentage float64 `yaml:"sampling_percentage"`
					} `yaml:"probabilistic"`
				} `yaml:"policies"`
			} `yaml:"tail_sampling"`
		} `yaml:"processors"`
	}
	require.NoError(t, yaml.Unmarshal(data, &cfg))
	var onSnapshot bool
	var percent float64
	for _, p := range cfg.Processors.TailSampling.Policies {
		switch p.Type {
		case "string_attribute":
			a := p.StringAttribute
			onSnapshot = onSnapshot || a.Key == string(otelfr.SnapshotIDKey) && a.Regex && slices.Equal(a.Values, []string{".+"})
		case "probabilistic":
			percent = p.Probabilistic.Percentage
		}
	}
	require.True(t, onSnapshot, "%s keeps every trace with %s", path, otelfr.SnapshotIDKey)
	require.True(t, percent > 0 && percent < 50, "%s keeps a small share of the other traces: %g%%", path, percent)
	return percent
}

// sentTrace is a trace sendTraces sent: its span IDs and, for an anomalous
// trace, the anomalous span's ID and what otelfr linked it to.
type sentTrace struct {
	traceID string
	spans   []string
	anomaly string
	reason  string

	snapshotID string
}

// sendTraces sends collectorTraces traces to the OTLP/gRPC endpoint
// through the otelfr pipeline of the quickstart, and returns them once the
// pipeline has shut down, every span exported.
func sendTraces(t *testing.T, endpoint string) []sentTrace {
	t.Helper()
	rec, err := otelfr.Start(otelfr.WithMinInterval(0))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rec.Stop(context.Background()) })
	store, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	otlp, err := otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	var mu sync.Mutex
	outcomes := map[string]spanprocessor.Outcome{} // by span ID
	proc := spanprocessor.New(
		sdktrace.NewBatchSpanProcessor(otlp, sdktrace.WithBatchTimeout(200*time.Millisecond)),
		rec,
		exporter.New(store, otlp, exporter.WithBaseURL(snapshotBase)),
		spanprocessor.WithLatencyThreshold(100*time.Millisecond),
		spanprocessor.WithOnAnomaly(func(o spanprocessor.Outcome) {
			mu.Lock()
			defer mu.Unlock()
			outcomes[o.Span.SpanContext().SpanID().String()] = o
		}),
	)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", collectorService))))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracer := otelfr.WrapTracerProvider(tp).Tracer("github.com/otelfr/otel-flightrecorder/e2e")

	var sent []sentTrace
	for i := range collectorTraces {
		ctx, root := tracer.Start(t.Context(), "GET /work", trace.WithSpanKind(trace.SpanKindServer))
		_, db := tracer.Start(ctx, "db.query", trace.WithSpanKind(trace.SpanKindClient))
		_, cache := tracer.Start(ctx, "cache.get")
		s := sentTrace{
			traceID: root.SpanContext().TraceID().String(),
			spans:   []string{root.SpanContext().SpanID().String(), db.SpanContext().SpanID().String(), cache.SpanContext().SpanID().String()},
		}
		anomalous := (i+1)%anomalyEvery == 0
		failed := anomalous && (i+1)/anomalyEvery%2 == 0
		if failed {
			db.SetStatus(codes.Error, "connection reset")
			s.anomaly, s.reason = s.spans[1], spanprocessor.ReasonError
		}
		cache.End()
		db.End()
		if anomalous && !failed {
			// The children are exported first: the collector sees the
			// trace before its anomalous root.
			time.Sleep(150 * time.Millisecond)
			s.anomaly, s.reason = s.spans[0], spanprocessor.ReasonLatency
		}
		root.End()
		sent = append(sent, s)
		time.Sleep(5 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, tp.Shutdown(ctx))
	require.NoError(t, rec.Stop(ctx))

	mu.Lock()
	defer mu.Unlock()
	var want []string
	for i := range sent {
		s := &sent[i]
		if s.anomaly == "" {
			continue
		}
		want = append(want, s.anomaly)
		o := outcomes[s.anomaly]
		require.Empty(t, o.Skipped, "the anomaly of trace %s has a snapshot", s.traceID)
		require.NotEmpty(t, o.SnapshotID, "the anomaly of trace %s has a snapshot", s.traceID)
		require.Equal(t, s.reason, o.Reason, "the anomaly of trace %s", s.traceID)
		s.snapshotID = o.SnapshotID
	}
	require.ElementsMatch(t, want, slices.Collect(maps.Keys(outcomes)), "the anomalous spans are the ones meant to be")
	return sent
}

// storedTraces returns the spans of the traces of collectorService since
// start in the Jaeger behind query, by trace ID.
func storedTraces(t *testing.T, query string, start time.Time) map[string][]span {
	t.Helper()
	q := url.Values{
		"query.service_name":   {collectorService},
		"query.start_time_min": {start.Add(-time.Minute).UTC().Format(time.RFC3339Nano)},
		"query.start_time_max": {time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)},
		"query.num_traces":     {"5000"},
	}
	resp, err := client.Get(query + "/api/v3/traces?" + q.Encode())
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	out := map[string][]span{}
	if resp.StatusCode == http.StatusNotFound { // none yet
		return out
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, "searching traces: %.500s", body)
	for _, s := range decodeSpans(t, body) {
		out[s.TraceID] = nil
	}
	for id := range out {
		out[id] = decodeSpans(t, get(t, query+"/api/v3/traces/"+id))
	}
	return out
}
