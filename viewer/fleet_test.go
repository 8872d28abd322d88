package viewer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"

	"github.com/otelfr/otel-flightrecorder/internal/snaptest"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

// pagingStore is a hand-written snapstore.Store and snapstore.Pager over
// made-up snapshots, newest first, that counts how it is read. Its page
// tokens are "at-N", the offset of the page's first snapshot.
type pagingStore struct {
	infos        []snapstore.Info
	lists, reads atomic.Int64
	fail         error // returned by every List and ListPage when set
	failTokens   bool  // ListPage fails for any token but ""
}

var _ snapstore.Pager = (*pagingStore)(nil)

var errNoWrites = errors.New("pagingStore: read only")

func (s *pagingStore) Save(context.Context, *otelfr.Snapshot) (snapstore.Info, error) {
	return snapstore.Info{}, errNoWrites
}

func (s *pagingStore) AddSpans(context.Context, string, []snapstore.SpanRef) error {
	return errNoWrites
}

func (s *pagingStore) List(context.Context) ([]snapstore.Info, error) {
	s.lists.Add(1)
	return s.infos, s.fail
}

func (s *pagingStore) Open(_ context.Context, id string) (io.ReadSeekCloser, snapstore.Info, error) {
	for _, in := range s.infos {
		if in.ID == id {
			return nopCloser{strings.NewReader("")}, in, nil
		}
	}
	return nil, snapstore.Info{}, snapstore.ErrNotFound
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

func (s *pagingStore) ListPage(_ context.Context, token string, n int) ([]snapstore.Info, string, error) {
	s.reads.Add(1)
	if s.fail != nil {
		return nil, "", s.fail
	}
	at := 0
	if token != "" {
		off, ok := strings.CutPrefix(token, "at-")
		var err error
		if at, err = strconv.Atoi(off); !ok || err != nil || at <= 0 || at >= len(s.infos) || s.failTokens {
			return nil, "", fmt.Errorf("pagingStore: %q: %w", token, snapstore.ErrBadPageToken)
		}
	}
	end := min(at+n, len(s.infos))
	next := ""
	if end < len(s.infos) {
		next = "at-" + strconv.Itoa(end)
	}
	return s.infos[at:end], next, nil
}

// fleetInfos makes n snapshots, newest first, taken by the replicas
// replica(i) names.
func fleetInfos(n int, replica func(i int) snapstore.Resource) []snapstore.Info {
	infos := make([]snapstore.Info, n)
	for i := range infos {
		infos[i] = snapstore.Info{
			ID:       fmt.Sprintf("SNAP%04d", i),
			Reason:   "latency",
			TakenAt:  snaptest.Epoch.Add(-time.Duration(i) * time.Second),
			Resource: replica(i),
		}
	}
	return infos
}

func serveStore(t *testing.T, store snapstore.Store, opts ...viewer.Option) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/snapshots/", http.StripPrefix("/snapshots", viewer.NewHandler(store, opts...)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/snapshots/"
}

var (
	rowRe  = regexp.MustCompile(`<td><a href="(SNAP\w+|[A-Z0-9]{26})">`)
	nextRe = regexp.MustCompile(`<a rel="next" href="([^"]+)">`)
)

// rows returns the IDs of the snapshots an index page lists.
func rows(body string) []string {
	var ids []string
	for _, m := range rowRe.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// nextLink returns the URL of the index page's link to older snapshots,
// resolved against the page's, or "" when it has none.
func nextLink(t *testing.T, page, body string) string {
	t.Helper()
	m := nextRe.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	base, err := url.Parse(page)
	require.NoError(t, err)
	ref, err := base.Parse(html.UnescapeString(m[1]))
	require.NoError(t, err)
	return ref.String()
}

// TestIndexPagesAStoreThatPages pins that the index over a store that
// pages reads one page with ListPage, never List, and links to the next.
func TestIndexPagesAStoreThatPages(t *testing.T) {
	store := &pagingStore{infos: fleetInfos(120, func(int) snapstore.Resource { return snapstore.Resource{} })}
	base := serveStore(t, store)

	var seen []string
	u := base
	for page := 1; u != ""; page++ {
		before := store.reads.Load()
		resp, body := fetch(t, u, true)
		require.Equal(t, http.StatusOK, resp.StatusCode, u)
		assert.Equal(t, int64(1), store.reads.Load()-before, "page %d: one ListPage call", page)
		ids := rows(body)
		assert.Len(t, ids, min(50, 120-len(seen)), "page %d", page)
		seen = append(seen, ids...)
		if page > 1 {
			assert.Contains(t, body, `href="./">« Newest</a>`, "page %d links to the first", page)
		}
		u = nextLink(t, u, body)
		require.LessOrEqual(t, page, 3)
	}
	assert.Len(t, seen, 120, "the pages hold every snapshot")
	assert.Equal(t, "SNAP0000", seen[0])
	assert.Equal(t, "SNAP0119", seen[119])
	assert.Zero(t, store.lists.Load(), "List is never called for the index")

	// snapshots.json pages too, up to its cap.
	for _, tt := range []struct {
		max, reads int
	}{{1000, 1}, {30, 1}} {
		store.reads.Store(0)
		b := serveStore(t, store, viewer.WithMaxList(tt.max))
		_, body := fetch(t, b+"snapshots.json", false)
		var list []snapstore.Info
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		assert.Len(t, list, min(tt.max, 120))
		assert.Equal(t, int64(tt.reads), store.reads.Load(), "max %d", tt.max)
	}
	assert.Zero(t, store.lists.Load(), "nor for snapshots.json")
}

// TestIndexPagesABucket follows the index's links over a real bucket
// store: its page tokens survive the page's escaping.
func TestIndexPagesABucket(t *testing.T) {
	store, err := bucketstore.Open(t.Context(), "mem://")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })
	for i := range 60 {
		_, err := store.Save(t.Context(), snaptest.Snapshot(i, 10))
		require.NoError(t, err)
	}
	base := serveStore(t, store)
	_, body := fetch(t, base, true)
	first := rows(body)
	require.Len(t, first, 50)
	assert.Equal(t, "SNAP59", first[0], "newest first")
	next := nextLink(t, base, body)
	require.NotEmpty(t, next)
	_, body = fetch(t, next, true)
	assert.Equal(t, []string{"SNAP09", "SNAP08", "SNAP07", "SNAP06", "SNAP05", "SNAP04", "SNAP03", "SNAP02", "SNAP01", "SNAP00"}, rows(body))
	assert.Empty(t, nextLink(t, next, body), "the last page")
	assert.Contains(t, body, "« Newest")
}

// openFleet returns a file:// bucket written by two replicas of checkout
// and one of orders, read by a store of its own as `otelfr serve` reads.
func openFleet(t *testing.T) *bucketstore.Store {
	t.Helper()
	loc := "file://" + t.TempDir()
	replicas := []struct {
		attrs []attribute.KeyValue
		snaps []int
	}{
		{[]attribute.KeyValue{attribute.String("service.name", "checkout"), attribute.String("service.version", "1.2.3"),
			attribute.String("service.instance.id", "a1"), attribute.String("host.name", "node-1")}, []int{1, 4}},
		{[]attribute.KeyValue{attribute.String("service.name", "checkout"), attribute.String("service.instance.id", "a2"),
			attribute.String("k8s.pod.name", "checkout-7f9c"), attribute.String("k8s.namespace.name", "shop")}, []int{2}},
		{[]attribute.KeyValue{attribute.String("service.name", "orders"), attribute.String("service.instance.id", "b1")}, []int{3, 5}},
	}
	for _, r := range replicas {
		w, err := bucketstore.Open(t.Context(), loc, bucketstore.WithResource(resource.NewSchemaless(r.attrs...)))
		require.NoError(t, err)
		for _, i := range r.snaps {
			_, err := w.Save(t.Context(), snaptest.Snapshot(i, 10))
			require.NoError(t, err)
		}
		require.NoError(t, w.Close())
	}
	store, err := bucketstore.Open(t.Context(), loc)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })
	return store
}

func TestIndexFilter(t *testing.T) {
	base := serveStore(t, openFleet(t))

	resp, body := fetch(t, base, true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []string{"SNAP05", "SNAP04", "SNAP03", "SNAP02", "SNAP01"}, rows(body))
	assert.Contains(t, body, "<th>Replica</th>")
	assert.Contains(t, body, `<a href="?service=checkout">checkout</a> <a class="muted" href="?instance=a1&amp;service=checkout">a1</a> <span class="muted">host node-1</span>`)
	assert.Contains(t, body, `<span class="muted">pod shop/checkout-7f9c</span>`)
	assert.Contains(t, body, `<form class="filter" method="get" action="./">`)
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "form-action 'self'", "the filter form may submit")

	tests := []struct {
		name, query string
		want        []string
		says        string
	}{
		{"service", "?service=checkout", []string{"SNAP04", "SNAP02", "SNAP01"}, "Snapshots of <code>checkout</code>"},
		{"other service", "?service=orders", []string{"SNAP05", "SNAP03"}, "Snapshots of <code>orders</code>"},
		{"instance", "?instance=a2", []string{"SNAP02"}, ", instance <code>a2</code>"},
		{"both", "?service=checkout&instance=a1", []string{"SNAP04", "SNAP01"}, `<strong>a1</strong>`},
		{"no match", "?service=orders&instance=a1", nil, "No snapshot among those read matches this filter."},
		{"unknown service", "?service=" + url.QueryEscape("no such <service>"), nil, "Snapshots of <code>no such &lt;service&gt;</code>"},
		{"empty values", "?service=&instance=", []string{"SNAP05", "SNAP04", "SNAP03", "SNAP02", "SNAP01"}, "<strong>all</strong>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := fetch(t, base+tt.query, true)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, tt.want, rows(body))
			assert.Contains(t, body, tt.says)
			if tt.query != "?service=&instance=" {
				assert.Contains(t, body, `href="./">show all</a>`)
			}

			_, data := fetch(t, base+"snapshots.json"+tt.query, false)
			var list []snapstore.Info
			require.NoError(t, json.Unmarshal([]byte(data), &list), data)
			assert.Equal(t, len(tt.want), len(list), "snapshots.json filters as the index does")
			for i, in := range list {
				assert.Equal(t, tt.want[i], in.ID)
			}
		})
	}

	// The choices: every service read; the instances of the one chosen.
	_, body = fetch(t, base+"?service=checkout", true)
	assert.Contains(t, body, `Services on this page: <a href="./">all</a> · <strong>checkout</strong> · <a href="?service=orders">orders</a>`)
	assert.Contains(t, body, `Instances on this page: <strong>all</strong> · <a href="?instance=a1&amp;service=checkout">a1</a> · <a href="?instance=a2&amp;service=checkout">a2</a></p>`)
}

// TestFilterFollowsPages pins the bound on what a filtered index reads: it
// follows pages until a page's worth matches or it has read ten, then
// links to the next, saying how many it read.
func TestFilterFollowsPages(t *testing.T) {
	store := &pagingStore{infos: fleetInfos(1000, func(i int) snapstore.Resource {
		if i == 700 || i == 800 {
			return snapstore.Resource{ServiceName: "rare", ServiceInstanceID: "r" + strconv.Itoa(i)}
		}
		return snapstore.Resource{ServiceName: "busy", ServiceInstanceID: strconv.Itoa(i % 3)}
	})}
	base := serveStore(t, store)

	u := base + "?service=rare"
	resp, body := fetch(t, u, true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(10), store.reads.Load(), "ten pages at most")
	assert.Empty(t, rows(body))
	assert.Contains(t, body, "Read 500 snapshots in 10 pages of the store (a filtered view reads up to 10) to find 0 that match; older snapshots are on the next pages.")
	assert.Contains(t, body, "No snapshot among those read matches this filter.")
	next := nextLink(t, u, body)
	require.NotEmpty(t, next)
	nu, err := url.Parse(next)
	require.NoError(t, err)
	assert.Equal(t, "rare", nu.Query().Get("service"), "the next page keeps the filter")
	assert.Equal(t, "at-500", nu.Query().Get("page"))

	store.reads.Store(0)
	_, body = fetch(t, next, true)
	assert.Equal(t, []string{"SNAP0700", "SNAP0800"}, rows(body))
	assert.Equal(t, int64(10), store.reads.Load(), "to the last page")
	assert.Empty(t, nextLink(t, next, body))
	assert.Contains(t, body, "to find 2 that match.")
	assert.Contains(t, body, `<a href="?instance=r700&amp;service=rare">r700</a>`)

	// Unfiltered, one page; filtered, as many as it takes to fill one.
	for _, tt := range []struct {
		query string
		reads int64
	}{{"", 1}, {"?service=busy", 1}, {"?instance=1", 3}} {
		store.reads.Store(0)
		_, body = fetch(t, base+tt.query, true)
		assert.Len(t, rows(body), 50, "%q", tt.query)
		assert.Equal(t, tt.reads, store.reads.Load(), "%q", tt.query)
	}
	assert.Zero(t, store.lists.Load())
}

func TestIndexPageTokens(t *testing.T) {
	infos := fleetInfos(60, func(int) snapstore.Resource { return snapstore.Resource{} })
	t.Run("malformed", func(t *testing.T) {
		base := serveStore(t, &pagingStore{infos: infos})
		for _, tok := range []string{"a b", "a\x00b", "a\nb", strings.Repeat("x", 2049), "\xff"} {
			resp, body := fetch(t, base+"?page="+url.QueryEscape(tok), true)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%q", tok)
			assert.Contains(t, body, "page must be a token from an index page")
		}
		resp, _ := fetch(t, base+"?service="+url.QueryEscape(strings.Repeat("s", 257)), true)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		resp, _ = fetch(t, base+"snapshots.json?instance=%00", false)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	t.Run("refused by a store that works", func(t *testing.T) {
		base := serveStore(t, &pagingStore{infos: infos})
		resp, body := fetch(t, base+"?page=at-9999", true)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, body, "its link is stale or was altered")
		assert.Empty(t, handled.Take(), "a bad link is not the store's failure")

		store, err := bucketstore.Open(t.Context(), "mem://")
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, store.Close()) })
		base = serveStore(t, store)
		resp, _ = fetch(t, base+"?page=bm90LWEta2V5.eHl6", true)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "snapstore.ErrBadPageToken")
		assert.Empty(t, handled.Take())
	})
	t.Run("on a store that fails", func(t *testing.T) {
		failure := errors.New("the bucket is down")
		base := serveStore(t, &pagingStore{infos: infos, fail: failure})
		for _, q := range []string{"", "?page=at-50"} {
			resp, body := fetch(t, base+q, true)
			assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, q)
			assert.Contains(t, body, "The snapshot store failed")
			assert.Equal(t, []error{failure}, handled.Take(), "%q: reported", q)
		}
	})
	t.Run("ignored by a store that does not page", func(t *testing.T) {
		srv, f := newServer(t)
		resp, body := fetch(t, srv.URL+"/snapshots/?page=at-50", true)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, body, f.id)
		assert.NotContains(t, body, "Older snapshots")
	})
}

// pendingStore marks every snapshot as still in its replica's spool.
type pendingStore struct{ snapstore.Store }

func (s pendingStore) List(ctx context.Context) ([]snapstore.Info, error) {
	infos, err := s.Store.List(ctx)
	for i := range infos {
		infos[i].Pending = true
	}
	return infos, err
}

func (s pendingStore) Open(ctx context.Context, id string) (io.ReadSeekCloser, snapstore.Info, error) {
	r, info, err := s.Store.Open(ctx, id)
	info.Pending = true
	return r, info, err
}

func TestPendingSnapshotsAreMarked(t *testing.T) {
	f := newFixture(t)
	base := serveStore(t, pendingStore{f.store})
	for _, u := range []string{base, base + f.id, base + f.id + "?span=" + f.spanID} {
		resp, body := fetch(t, u, true)
		require.Equal(t, http.StatusOK, resp.StatusCode, u)
		assert.Contains(t, body, `<span class="tag warn"`, u)
		assert.Contains(t, body, "pending", u)
	}
	_, body := fetch(t, serveStore(t, f.store)+f.id, true)
	assert.NotContains(t, body, "pending", "an uploaded snapshot is not")
}

// TestNotFoundSaysNotUploadedYet: a central viewer does not find a
// snapshot still in its replica's spool, and says so.
func TestNotFoundSaysNotUploadedYet(t *testing.T) {
	base := serveStore(t, openFleet(t))
	for _, u := range []string{base + "NOTYETUPLOADED", base + "NOTYETUPLOADED?span=0123456789abcdef"} {
		resp, body := fetch(t, u, true)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, u)
		assert.Contains(t, body, "unknown, removed by retention, or not yet uploaded from the replica that took it: reload in a while", u)
	}
	for _, u := range []string{base + "NOTYETUPLOADED", base + "NOTYETUPLOADED.trace", base + "NOTYETUPLOADED.json"} {
		resp, body := fetch(t, u, false)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, u)
		assert.Contains(t, body, "not yet uploaded from the replica that took it", u)
	}
}

// spanRefs rewrites the spans a store lists with a snapshot.
type spanRefs struct {
	snapstore.Store
	edit func([]snapstore.SpanRef) []snapstore.SpanRef
}

func (s spanRefs) Open(ctx context.Context, id string) (io.ReadSeekCloser, snapstore.Info, error) {
	r, info, err := s.Store.Open(ctx, id)
	info.Spans = s.edit(info.Spans)
	return r, info, err
}

// TestSpanPageDiagnosesOnDemand pins that the span page analyses the
// snapshot when asked, whatever was stored: a snapshot with no verdict for
// the span, or that does not list the span at all, still gets a diagnosis;
// a stored verdict is shown too.
func TestSpanPageDiagnosesOnDemand(t *testing.T) {
	f := newFixture(t)
	r, _, err := f.store.Open(t.Context(), f.id)
	require.NoError(t, err)
	data, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())

	// The fixture's trace in a bucket, as a replica uploads it, with no
	// span recorded with it.
	bucket, err := bucketstore.Open(t.Context(), "mem://", bucketstore.WithResource(resource.NewSchemaless(
		attribute.String("service.name", "checkout"), attribute.String("service.instance.id", "a1"),
		attribute.String("host.name", "node-1"))))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, bucket.Close()) })
	_, err = bucket.Save(t.Context(), &otelfr.Snapshot{ID: f.id, Reason: "latency", Data: data, TakenAt: time.Now()})
	require.NoError(t, err)

	const stored = "error: Unavailable from inventory.Inventory/Reserve: connection refused"
	tests := []struct {
		name     string
		store    snapstore.Store
		verdict  string // in #verdict
		onDemand string // in #on-demand
	}{
		{"no verdict stored", spanRefs{f.store, func(s []snapstore.SpanRef) []snapstore.SpanRef {
			for i := range s {
				s[i].Verdict = ""
			}
			return s
		}}, "sync.Mutex", "No verdict was stored with this span"},
		{"span not listed", spanRefs{f.store, func([]snapstore.SpanRef) []snapstore.SpanRef { return nil }},
			"sync.Mutex", "No verdict was stored with this span"},
		{"a bucket without spans", bucket, "sync.Mutex", "No verdict was stored with this span"},
		{"a stored verdict", storedVerdict{f.store, stored}, stored, "Diagnosed again from the snapshot by the viewer: <span class=\"verdict\">"},
	}
	verdictRe := regexp.MustCompile(`<p class="verdict big" id="verdict">([^<]*)</p>`)
	onDemandRe := regexp.MustCompile(`<p class="muted" id="on-demand">(.*)</p>`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := serveStore(t, tt.store)
			resp, body := fetch(t, base+f.id+"?span="+f.spanID, true)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			v := verdictRe.FindStringSubmatch(body)
			require.NotNil(t, v, "a verdict")
			assert.Contains(t, v[1], tt.verdict)
			od := onDemandRe.FindStringSubmatch(body)
			require.NotNil(t, od, "the page says it diagnosed the span")
			assert.Contains(t, od[1], tt.onDemand)
			assert.Contains(t, od[1]+v[1], "sync.Mutex", "the viewer's own diagnosis")
			assert.Contains(t, body, "blocked.mutex", "with its breakdown")
			assert.Contains(t, body, `<svg class="timeline"`, "and its timeline")
		})
	}

	// The bucket's snapshot names its replica on both pages.
	base := serveStore(t, bucket)
	for _, u := range []string{base + f.id, base + f.id + "?span=" + f.spanID} {
		_, body := fetch(t, u, true)
		assert.Contains(t, body, "<dt>Replica</dt><dd>checkout, instance a1, host node-1", u)
	}
	_, body := fetch(t, base+f.id, true)
	assert.Contains(t, body, `<a href="./?service=checkout">its snapshots</a>`)
	_, body = fetch(t, serveStore(t, f.store)+f.id, true)
	assert.NotContains(t, body, "Replica", "a DirStore's snapshots name none")
}
