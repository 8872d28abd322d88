package viewer_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

// incidentInfos makes n snapshots, newest first, one a second back from
// newest, each with one anomalous span of one of two incident kinds, taken
// by two replicas of "orders": even ones slow on a mutex, with durations
// of 100 ms and up, odd ones past a deadline.
func incidentInfos(n int, newest time.Time) []snapstore.Info {
	infos := make([]snapstore.Info, n)
	for i := range infos {
		taken := newest.Add(-time.Duration(i) * time.Second)
		d := time.Duration(100+i%10) * time.Millisecond
		ref := snapstore.SpanRef{
			TraceID: fmt.Sprintf("%032x", i+1), SpanID: fmt.Sprintf("%016x", i+1),
			Name: "POST /orders", Start: taken.Add(-d - time.Millisecond), End: taken.Add(-time.Millisecond), Reason: "latency",
			// A verdict's numbers differ from span to span; its cause
			// does not.
			Verdict: fmt.Sprintf("%d%% of %s blocked on sync.Mutex in main.reserve; released by goroutine %d in main.restock", 90+i%7, d, 40+i),
			Cause:   "blocked.mutex in main.reserve; root: main.restock",
		}
		if i%2 == 1 {
			ref.Name = "GET /inventory"
			ref.Reason = "error"
			ref.Verdict = fmt.Sprintf("100%% of %s blocked in select in main.call; the context deadline expired after %s", d, d)
			ref.Cause = "blocked.select in main.call; root: context deadline"
		}
		infos[i] = snapstore.Info{
			ID: fmt.Sprintf("SNAP%05d", i), Reason: ref.Reason, TakenAt: taken,
			Resource: snapstore.Resource{ServiceName: "orders", ServiceInstanceID: fmt.Sprintf("orders-%d", i/2%2)},
			Spans:    []snapstore.SpanRef{ref},
		}
	}
	return infos
}

func TestCausesGroupsByCause(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	store := &pagingStore{infos: incidentInfos(100, now)}
	rep, err := viewer.Causes(t.Context(), store, viewer.CausesQuery{From: now.Add(-time.Hour), To: now})
	require.NoError(t, err)
	require.Len(t, rep.Groups, 2, "one group per incident kind, whatever the verdicts' numbers")
	assert.Equal(t, 100, rep.Anomalies)
	for _, g := range rep.Groups {
		assert.Equal(t, "orders", g.Service)
		assert.Equal(t, 50, g.Count)
		assert.Equal(t, []string{"orders-0", "orders-1"}, g.Replicas)
		assert.Len(t, g.Examples, 3)
		assert.True(t, g.Examples[0].End.After(g.Examples[1].End), "newest example first")
		assert.Equal(t, g.LastSeen, g.Examples[0].End)
		assert.True(t, g.FirstSeen.Before(g.LastSeen))
		assert.GreaterOrEqual(t, g.P99, g.P50)
		assert.GreaterOrEqual(t, g.P50, 100*time.Millisecond)
		assert.Less(t, g.P99, 110*time.Millisecond)
		sum := 0
		for _, c := range g.Trend {
			sum += c
		}
		assert.Equal(t, g.Count, sum, "the trend counts every span")
	}
	assert.Equal(t, int64(0), store.lists.Load(), "a store that pages is never listed whole")

	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			q      viewer.CausesQuery
			groups int
			count  int
		}{
			{"span", viewer.CausesQuery{Span: "GET /inventory"}, 1, 50},
			{"reason", viewer.CausesQuery{Reason: "latency"}, 1, 50},
			{"replica", viewer.CausesQuery{Replica: "orders-1"}, 2, 50},
			{"service", viewer.CausesQuery{Service: "billing"}, 0, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.q.From, tc.q.To = now.Add(-time.Hour), now
				rep, err := viewer.Causes(t.Context(), store, tc.q)
				require.NoError(t, err)
				assert.Len(t, rep.Groups, tc.groups)
				assert.Equal(t, tc.count, rep.Anomalies)
			})
		}
	})
	t.Run("stored without a cause", func(t *testing.T) {
		old := incidentInfos(20, now)
		for i := range old {
			old[i].Spans[0].Cause = ""
		}
		rep, err := viewer.Causes(t.Context(), &pagingStore{infos: old}, viewer.CausesQuery{From: now.Add(-time.Hour), To: now})
		require.NoError(t, err)
		assert.Len(t, rep.Groups, 2, "grouped by their verdicts without numbers")
	})
}

// TestCausesSpanService pins that a span stored with its own service is
// grouped and filtered by it, not by its snapshot's resource: one process
// runs two services (the demo's orders and inventory), and its snapshots
// record the resource of one.
func TestCausesSpanService(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	infos := incidentInfos(4, now)
	for i := range infos {
		infos[i].Spans[0].Name = "POST /reserve"
		infos[i].Spans[0].Cause = "blocked.network in main.read"
		if i%2 == 0 {
			infos[i].Spans[0].Service = "inventory"
		}
	}
	store := &pagingStore{infos: infos}
	rep, err := viewer.Causes(t.Context(), store, viewer.CausesQuery{From: now.Add(-time.Hour), To: now})
	require.NoError(t, err)
	require.Len(t, rep.Groups, 2, "one group per service")
	services := map[string]int{}
	for _, g := range rep.Groups {
		services[g.Service] = g.Count
	}
	assert.Equal(t, map[string]int{"inventory": 2, "orders": 2}, services, "a span without a service of its own takes its snapshot's")
	rep, err = viewer.Causes(t.Context(), store, viewer.CausesQuery{From: now.Add(-time.Hour), To: now, Service: "inventory"})
	require.NoError(t, err)
	assert.Equal(t, 2, rep.Anomalies, "?service= filters by the span's own service")
}

// TestCausesStopsAtTheRangeStart pins that a report reads a bucket's pages
// only until they pass the range's start: keys are newest first.
func TestCausesStopsAtTheRangeStart(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	store := &pagingStore{infos: incidentInfos(5000, now)}
	rep, err := viewer.Causes(t.Context(), store, viewer.CausesQuery{From: now.Add(-1500 * time.Second), To: now.Add(time.Second)})
	require.NoError(t, err)
	assert.Equal(t, int64(2), store.reads.Load(), "two pages of 1,000 reach 1,500 seconds back")
	assert.Equal(t, 1500, rep.Anomalies)
	assert.False(t, rep.Truncated)
}

var exampleRe = regexp.MustCompile(`<a class="example" href="([^"]+)">`)

func TestCausesPage(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	base := serveStore(t, &pagingStore{infos: incidentInfos(40, now)})

	resp, body := fetch(t, base, true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, `href="causes"`, "the index links to the causes page")

	resp, body = fetch(t, base+"causes", true)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, 2, strings.Count(body, `<tr class="group">`))
	assert.Contains(t, body, "blocked.mutex in main.reserve; root: main.restock")
	assert.Contains(t, body, `<svg class="spark"`)
	assert.NotContains(t, body, "<script")
	m := exampleRe.FindStringSubmatch(body)
	require.NotNil(t, m)
	assert.Regexp(t, `^SNAP\d+\?span=[0-9a-f]{16}$`, m[1])

	resp, body = fetch(t, base+"causes.json?since=10s&replica=orders-0", false)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var rep viewer.CauseReport
	require.NoError(t, json.Unmarshal([]byte(body), &rep))
	assert.Equal(t, "orders-0", rep.Query.Replica)
	for _, g := range rep.Groups {
		assert.Equal(t, []string{"orders-0"}, g.Replicas)
	}
	assert.Positive(t, rep.Anomalies)
	assert.Less(t, rep.Anomalies, 20, "ten seconds hold a quarter of them")

	for _, q := range []string{"since=-1h", "since=soon", "since=800h", "from=yesterday", "service=%01"} {
		resp, _ := fetch(t, base+"causes?"+q, true)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, q)
		resp, _ = fetch(t, base+"causes.json?"+q, false)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, q)
	}
}

func TestCausesOnAStoreThatFails(t *testing.T) {
	failure := errors.New("the bucket is down")
	base := serveStore(t, &pagingStore{fail: failure})
	resp, body := fetch(t, base+"causes", true)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Contains(t, body, "The snapshot store failed")
	assert.Equal(t, []error{failure}, handled.Take(), "reported")
	resp, body = fetch(t, base+"causes.json", false)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Contains(t, body, `"error"`)
	assert.Equal(t, []error{failure}, handled.Take(), "reported")
}

// BenchmarkCausesPage renders the causes page over 10,000 stored
// anomalies (issue 17's target: 300 ms).
func BenchmarkCausesPage(b *testing.B) {
	now := time.Now().Truncate(time.Second)
	store := &pagingStore{infos: incidentInfos(10000, now)}
	h := viewer.NewHandler(store)
	req := httptest.NewRequest(http.MethodGet, "/causes?since=3h", nil)
	req.Header.Set("Accept", "text/html")
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "10000 anomalous spans") {
			b.Fatalf("status %d: %.300s", rec.Code, rec.Body.String())
		}
	}
}

// BenchmarkCausesPageBucket is BenchmarkCausesPage over a bucket
// (bucketstore in memory) that holds the 10,000 snapshots: reading their
// metadata, 10 pages of 1,000, is most of the cost.
func BenchmarkCausesPageBucket(b *testing.B) {
	now := time.Now().Truncate(time.Second)
	store, err := bucketstore.Open(b.Context(), "mem://")
	require.NoError(b, err)
	b.Cleanup(func() { _ = store.Close() })
	for _, in := range incidentInfos(10000, now) {
		_, err := store.Save(b.Context(), &otelfr.Snapshot{ID: in.ID, Reason: in.Reason, TakenAt: in.TakenAt, Data: []byte("trace")})
		require.NoError(b, err)
		require.NoError(b, store.AddSpans(b.Context(), in.ID, in.Spans))
	}
	h := viewer.NewHandler(store)
	req := httptest.NewRequest(http.MethodGet, "/causes?since=3h", nil)
	req.Header.Set("Accept", "text/html")
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "10000 anomalous spans") {
			b.Fatalf("status %d: %.300s", rec.Code, rec.Body.String())
		}
	}
}
