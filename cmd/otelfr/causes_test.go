package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

// causesBucket writes a file:// bucket where two replicas of "orders" each
// saved 6 snapshots from 10:00:01 UTC on (the second replica a second
// later), a minute apart, each with a slow
// span: those of even minutes blocked on a mutex, the others past a
// deadline, with verdicts whose numbers differ.
func causesBucket(t *testing.T) string {
	t.Helper()
	loc := "file://" + t.TempDir()
	epoch := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for r := range 2 {
		res := resource.NewSchemaless(attribute.String("service.name", "orders"), attribute.String("service.instance.id", fmt.Sprintf("orders-%d", r)))
		w, err := bucketstore.Open(t.Context(), loc, bucketstore.WithResource(res))
		require.NoError(t, err)
		for i := range 6 {
			id := fmt.Sprintf("R%dS%d", r, i)
			at := epoch.Add(time.Duration(i)*time.Minute + time.Duration(r+1)*time.Second)
			_, err := w.Save(t.Context(), &otelfr.Snapshot{ID: id, Reason: "latency", Data: []byte("trace"), TakenAt: at})
			require.NoError(t, err)
			ref := snapstore.SpanRef{
				TraceID: fmt.Sprintf("%032x", 100*r+i+1), SpanID: fmt.Sprintf("%016x", 100*r+i+1), Name: "POST /orders", Reason: "latency",
				Start: at.Add(-time.Duration(200+i) * time.Millisecond), End: at.Add(-time.Millisecond),
				Verdict: fmt.Sprintf("9%d%% of %d ms blocked on sync.Mutex in main.reserve", i, 200+i),
				Cause:   "blocked.mutex in main.reserve; root: main.restock",
			}
			if i%2 == 1 {
				ref.Cause = "blocked.select in main.call; root: context deadline"
			}
			require.NoError(t, w.AddSpans(t.Context(), id, []snapstore.SpanRef{ref}))
		}
		require.NoError(t, w.Close())
	}
	return loc
}

func TestCausesCommand(t *testing.T) {
	loc := causesBucket(t)
	var stdout, stderr bytes.Buffer
	code := run([]string{"causes", "-store", loc, "-from", "2026-12-01T10:00:00Z", "-to", "2026-12-01T11:00:00Z"}, nil, &stdout, &stderr)
	require.Equal(t, exitOK, code, stderr.String())
	out := stdout.String()
	assert.Contains(t, out, "12 anomalous spans from 2026-12-01 10:00:00Z to 2026-12-01 11:00:00Z in 2 groups")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 5, out)
	assert.Regexp(t, `^COUNT +LOST +P50 +P99 +REPLICAS`, lines[2])
	assert.Regexp(t, `^6 +1\.2\d*s +20\dms +20\dms +2 +2026-12-01 10:05:01Z +orders +POST /orders +blocked\.select in main\.call; root: context deadline +R1S5 --span [0-9a-f]{16}$`, lines[3])
	assert.Contains(t, lines[4], "blocked.mutex in main.reserve; root: main.restock")

	t.Run("json and filters", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := run([]string{"causes", "-store", loc, "-since", "150s", "-to", "2026-12-01T10:05:30Z", "-replica", "orders-0", "-json"}, nil, &stdout, &stderr)
		require.Equal(t, exitOK, code, stderr.String())
		var rep viewer.CauseReport
		require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
		assert.Equal(t, 3, rep.Anomalies, "minutes 3, 4 and 5 of one replica")
		assert.Len(t, rep.Groups, 2)
	})
	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"causes"},
			{"causes", "-store", loc, "-since", "-1h"},
			{"causes", "-store", loc, "-from", "today"},
			{"causes", "-store", loc, "extra"},
		} {
			var stdout, stderr bytes.Buffer
			t.Setenv(bucketstore.EnvStore, "")
			assert.Equal(t, exitUsage, run(args, nil, &stdout, &stderr), args)
			assert.NotEmpty(t, stderr.String())
		}
	})
}
