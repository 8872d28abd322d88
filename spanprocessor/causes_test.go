package spanprocessor_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// TestCausesMetric pins issue 17's self-telemetry: each diagnosed anomaly
// is counted in otelfr.causes under its diagnosis's cause.
func TestCausesMetric(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(time.Hour)},
		spanprocessor.WithLatencyThreshold(10*time.Millisecond),
		spanprocessor.WithCoalesceWindow(0),
		spanprocessor.WithDiagnoser(&fakeDiagnoser{}),
		spanprocessor.WithMeterProvider(mp))
	p.span("first", 20*time.Millisecond)
	require.NoError(t, p.proc.ForceFlush(t.Context()))

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(t.Context(), &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "otelfr.causes" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				v, _ := dp.Attributes.Value("cause")
				got[v.AsString()] = dp.Value
			}
		}
	}
	assert.Equal(t, map[string]int64{"cause of first": 1}, got)
}
