package otelfr_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// TestREADMEConfigurationTable checks the README's configuration table
// against the code, so that neither drifts.
func TestREADMEConfigurationTable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| `OTELFR_") {
			cells := strings.Split(line, "|")
			rows[strings.Trim(cells[1], " `")] = strings.Trim(cells[3], " `")
		}
	}
	want := map[string]string{
		otelfr.EnvMinAge:                  otelfr.DefaultMinAge.String(),
		otelfr.EnvMaxBytes:                "16MiB",
		otelfr.EnvMinInterval:             otelfr.DefaultMinInterval.String(),
		otelfr.EnvByteBudget:              "256MiB",
		otelfr.EnvBudgetPeriod:            "1h",
		otelfr.EnvDiskDir:                 "",
		spanprocessor.EnvLatencyThreshold: spanprocessor.DefaultLatencyThreshold.String(),
		exporter.EnvBaseURL:               exporter.DefaultBaseURL,
		bucketstore.EnvStore:              filepath.Join("$TMPDIR", strings.TrimPrefix(bucketstore.DefaultDir("PROGRAM"), os.TempDir())),
	}
	assert.Equal(t, int64(16<<20), int64(otelfr.DefaultMaxBytes))
	assert.Equal(t, int64(256<<20), int64(otelfr.DefaultByteBudget))
	assert.Equal(t, "1h0m0s", otelfr.DefaultBudgetPeriod.String())
	assert.Equal(t, want, rows)
}

// TestREADMEAttributeTable checks that every attribute key and skip reason
// is documented.
func TestREADMEAttributeTable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	readme := string(b)
	for _, k := range []string{
		string(otelfr.SnapshotIDKey), string(otelfr.SnapshotURLKey), string(otelfr.SnapshotReasonKey),
		string(spanprocessor.SnapshotSkippedKey), string(otelfr.SnapshotSizeKey), string(otelfr.SnapshotSHA256Key),
		string(otelfr.SnapshotWindowStartKey), otelfr.AttachmentSpanName,
		string(otelfr.SnapshotSpanIDKey), string(otelfr.SnapshotTakenAtKey),
		spanprocessor.SkipRateLimited, spanprocessor.SkipByteBudget, spanprocessor.SkipQueueFull,
		spanprocessor.SkipOutsideWindow, spanprocessor.SkipStopped, spanprocessor.SkipError, spanprocessor.SkipCooldown,
		string(otelfr.SampledKey),
		string(otelfr.SnapshotCrashOutputKey), otelfr.ReasonCrash,
		string(analysis.CrashOpenSpansKey), analysis.OpenSpanEventName,
		spanprocessor.ReasonError, spanprocessor.ReasonLatency, spanprocessor.ReasonAdaptiveLatency,
		spanprocessor.ReasonHTTPServerError, spanprocessor.ReasonGRPCError, spanprocessor.ReasonException,
	} {
		assert.Contains(t, readme, "`"+k+"`")
	}
	assert.Contains(t, readme, "`"+strings.TrimPrefix(string(otelfr.SnapshotWindowEndKey), "otelfr.snapshot")+"`")
}
