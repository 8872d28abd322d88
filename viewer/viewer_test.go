package viewer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

// handled collects what the package reports to otel.Handle.
var handled *testutil.ErrorSink

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "otelfr-viewer")
	if err != nil {
		panic(err)
	}
	handled = testutil.InstallErrorSink()
	shared, fixtureErr = record(dir)
	code := handled.Verify(m.Run())
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// fixture is a store holding one real snapshot of spans slowed by a
// contended mutex, recorded through the whole otelfr pipeline: the span
// "GET /checkout", alone in its trace, and two anomalous spans of another
// trace, a server span and its client child, as a failing call makes.
type fixture struct {
	store   *snapstore.DirStore
	id      string
	spanID  string
	traceID string

	// multiTraceID is the trace with two anomalous spans; multi maps each
	// one's span ID to its attributes as the processor forwarded it.
	multiTraceID string
	multi        map[string]map[string]string

	// crash is a store of its own holding crashID, a snapshot labelled
	// otelfr.ReasonCrash, taken while the span "POST /pay" (openSpanID)
	// was open.
	crash      *snapstore.DirStore
	crashID    string
	openSpanID string
}

// shared is recorded once, in TestMain: one flight recorder per process.
var (
	shared     fixture
	fixtureErr error
)

func newFixture(t testing.TB) fixture {
	t.Helper()
	require.NoError(t, fixtureErr)
	return shared
}

func record(dir string) (fixture, error) {
	rec, err := otelfr.Start(otelfr.WithMinInterval(0))
	if err != nil {
		return fixture{}, err
	}
	defer rec.Stop(context.Background())
	store, err := snapstore.NewDirStore(dir)
	if err != nil {
		return fixture{}, err
	}
	out := fixture{store: store, multi: map[string]map[string]string{}}
	proc := spanprocessor.New(sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter()), rec,
		exporter.New(store, nil),
		spanprocessor.WithLatencyThreshold(50*time.Millisecond),
		spanprocessor.WithOnAnomaly(func(o spanprocessor.Outcome) {
			if o.SnapshotID == "" {
				return // skipped: the tests require every span linked
			}
			sc := o.Span.SpanContext()
			out.id = o.SnapshotID
			if o.Span.Name() == "GET /checkout" {
				out.spanID, out.traceID = sc.SpanID().String(), sc.TraceID().String()
				return
			}
			attrs := map[string]string{}
			for _, kv := range o.Span.Attributes() {
				attrs[string(kv.Key)] = kv.Value.String()
			}
			out.multiTraceID, out.multi[sc.SpanID().String()] = sc.TraceID().String(), attrs
		}))
	tp := otelfr.WrapTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc)))
	defer tp.Unwrap().(*sdktrace.TracerProvider).Shutdown(context.Background())

	time.Sleep(50 * time.Millisecond)
	var mu sync.Mutex
	held := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		mu.Lock()
		close(held)
		deadline := time.Now().Add(120 * time.Millisecond)
		x := 0
		for time.Now().Before(deadline) {
			x++
		}
		mu.Unlock()
	}()
	<-held
	tracer := tp.Tracer("viewer")
	// Another trace waits on the same lock: its server span and the client
	// span it made both end slow, within the coalesce window of the
	// checkout's, so all three share the snapshot.
	other := make(chan struct{})
	go func() {
		defer close(other)
		ctx, server := tracer.Start(context.Background(), "POST /orders", trace.WithSpanKind(trace.SpanKindServer))
		_, client := tracer.Start(ctx, "GET /inventory", trace.WithSpanKind(trace.SpanKindClient))
		mu.Lock()
		//lint:ignore SA2001 waiting for the lock is the point
		mu.Unlock()
		client.End()
		server.End()
	}()
	_, s := tracer.Start(context.Background(), "GET /checkout")
	mu.Lock()
	//lint:ignore SA2001 waiting for the lock is the point
	mu.Unlock()
	s.End()
	<-done
	<-other
	if err := proc.ForceFlush(context.Background()); err != nil {
		return fixture{}, err
	}

	// A snapshot of a span still open, stored as a crash snapshot would
	// be.
	_, pay := tracer.Start(context.Background(), "POST /pay")
	defer pay.End()
	time.Sleep(20 * time.Millisecond)
	snap, err := rec.Snapshot(context.Background(), otelfr.ReasonCrash)
	if err != nil {
		return fixture{}, err
	}
	snap.CrashOutput = "panic: boom\n"
	if out.crash, err = snapstore.NewDirStore(filepath.Join(dir, "crash")); err != nil {
		return fixture{}, err
	}
	info, err := out.crash.Save(context.Background(), snap)
	if err != nil {
		return fixture{}, err
	}
	out.crashID, out.openSpanID = info.ID, pay.SpanContext().SpanID().String()
	return out, nil
}

func newServer(t *testing.T, opts ...viewer.Option) (*httptest.Server, fixture) {
	t.Helper()
	f := newFixture(t)
	mux := http.NewServeMux()
	mux.Handle("/snapshots/", http.StripPrefix("/snapshots", viewer.NewHandler(f.store, opts...)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, f
}

func fetch(t *testing.T, url string, html bool, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if html {
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestPages(t *testing.T) {
	srv, f := newServer(t)
	require.NotEmpty(t, f.id, "the fixture's span got a snapshot")
	base := srv.URL + "/snapshots/"

	resp, body := fetch(t, base, true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	assert.Contains(t, body, `href="`+f.id+`"`, "index links the snapshot")
	assert.Contains(t, body, `href="`+f.id+`?span=`+f.spanID+`"`, "and its span")
	assert.Contains(t, body, "GET /checkout")
	assert.Contains(t, body, "Treat it as sensitive", "the footer warns")

	resp, body = fetch(t, base+f.id, true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "go tool trace otelfr-"+f.id+".trace")
	assert.Contains(t, body, "curl -o otelfr-"+f.id+".trace "+base+f.id+".trace")
	assert.Contains(t, body, `href="`+f.id+`.trace"`)
	assert.Contains(t, body, "min age 10.00 s")

	resp, body = fetch(t, base+f.id+"?span="+f.spanID, true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, `id="verdict"`)
	assert.Contains(t, body, "sync.Mutex", "the verdict names the cause")
	assert.Contains(t, body, "blocked.mutex")

	resp, _ = fetch(t, base+"assets/style.css", false)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/css")
}

// TestTraceLink follows a link that names the snapshot and the trace, as a
// Jaeger link pattern builds it (#{traceID}): it leads to the span page of
// the trace's anomalous span.
func TestTraceLink(t *testing.T) {
	srv, f := newServer(t)
	base := srv.URL + "/snapshots/"
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest(http.MethodGet, base+f.id+"?trace="+f.traceID, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/html")
	resp, err := noFollow.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "?span="+f.spanID, resp.Header.Get("Location"), "relative, so that the mount prefix stays")

	resp, body := fetch(t, base+f.id+"?trace="+strings.ToUpper(f.traceID), true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, base+f.id+"?span="+f.spanID, resp.Request.URL.String(), "a browser lands on the span page")
	assert.Contains(t, body, `id="verdict"`)

	resp, body = fetch(t, base+f.id+"?trace=0123456789abcdef0123456789abcdef", true)
	require.Equal(t, http.StatusOK, resp.StatusCode, "a trace the snapshot does not cover")
	assert.Equal(t, base+f.id+"?trace=0123456789abcdef0123456789abcdef", resp.Request.URL.String())
	assert.Contains(t, body, "go tool trace", "gets the snapshot page")

	resp, body = fetch(t, base+f.id+"?trace="+f.traceID, false)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, strings.HasPrefix(body, "go 1."), "other clients get the trace")
}

// TestSeveralAnomalousSpansOfATraceLandOnTheWrongPage pins "traces with
// several anomalous spans land on the wrong page": the Jaeger UI's link,
// filled in from each span's attributes as deploy/jaeger/ui.json says,
// opened the snapshot's page, which listed the spans of every trace in the
// snapshot without their trace IDs. Each span's link must open its own
// page, and a link that names only the trace must list that trace's spans
// alone, with its ID.
func TestSeveralAnomalousSpansOfATraceLandOnTheWrongPage(t *testing.T) {
	srv, f := newServer(t)
	require.Len(t, f.multi, 2, "two anomalous spans of one trace share the snapshot")
	base := srv.URL + "/snapshots/"
	pattern := jaegerLinkPattern(t)

	for sid, attrs := range f.multi {
		assert.Equal(t, sid, attrs[string(otelfr.SnapshotSpanIDKey)], "the span carries its own ID for the link")
		link := pattern.fill(t, attrs, f.multiTraceID)
		u, err := url.Parse(link)
		require.NoError(t, err)
		resp, body := fetch(t, base+strings.TrimPrefix(u.Path, "/snapshots/")+"?"+u.RawQuery, true)
		require.Equal(t, http.StatusOK, resp.StatusCode, link)
		assert.Equal(t, sid, resp.Request.URL.Query().Get("span"), "%s lands on the page of span %s", link, sid)
		assert.Contains(t, body, `id="verdict"`, "with its verdict")
		assert.Contains(t, body, "<code>"+f.multiTraceID+"</code>", "of its trace")
	}

	// A link that names the trace only, as the pattern did before.
	resp, body := fetch(t, base+f.id+"?trace="+f.multiTraceID, true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, resp.Request.URL.Query().Get("span"), "two spans: no one span page to send the browser to")
	for sid := range f.multi {
		assert.Contains(t, body, `?span=`+sid+`"`, "lists the trace's span %s", sid)
	}
	assert.Equal(t, 2, strings.Count(body, "<code class=\"muted\">"+f.multiTraceID+"</code>"), "each with its trace ID")
	assert.NotContains(t, body, f.spanID, "and no span of another trace")
	assert.NotContains(t, body, f.traceID)
	assert.Contains(t, body, "1 anomalous span of other traces in this snapshot is not listed")

	// Without a trace, the snapshot's page lists all three, with their traces.
	_, body = fetch(t, base+f.id, true)
	for _, sid := range append(slices.Collect(maps.Keys(f.multi)), f.spanID) {
		assert.Contains(t, body, `?span=`+sid+`"`)
	}
	assert.Contains(t, body, "<code class=\"muted\">"+f.traceID+"</code>")
}

// uiLinkPattern is the link pattern of deploy/jaeger/ui.json.
type uiLinkPattern struct{ URL, Key string }

func jaegerLinkPattern(t *testing.T) uiLinkPattern {
	t.Helper()
	data, err := os.ReadFile("../deploy/jaeger/ui.json")
	require.NoError(t, err)
	var cfg struct {
		LinkPatterns []uiLinkPattern `json:"linkPatterns"`
	}
	require.NoError(t, json.Unmarshal(data, &cfg))
	require.Len(t, cfg.LinkPatterns, 1)
	require.Equal(t, string(otelfr.SnapshotIDKey), cfg.LinkPatterns[0].Key)
	return cfg.LinkPatterns[0]
}

// fill fills in the template as the Jaeger UI does, for values that URL
// encoding leaves alone (IDs in hex and base32): #{trace.traceID} is the
// trace's ID, any other #{key} the span's attribute. A missing attribute
// fails the test: the UI would show no link.
func (p uiLinkPattern) fill(t *testing.T, attrs map[string]string, traceID string) string {
	t.Helper()
	return regexp.MustCompile(`#\{([^}]+)\}`).ReplaceAllStringFunc(p.URL, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := attrs[name]
		if name == "trace.traceID" {
			v, ok = traceID, true
		}
		require.True(t, ok, "the span has %s for the link", name)
		require.Equal(t, url.QueryEscape(v), v, "%s needs no encoding", name)
		return v
	})
}

func TestRawRoutesStillServeData(t *testing.T) {
	srv, f := newServer(t)
	base := srv.URL + "/snapshots/"
	for _, u := range []string{base + f.id, base + f.id + "?span=" + f.spanID, base + f.id + ".trace"} {
		resp, body := fetch(t, u, false)
		require.Equal(t, http.StatusOK, resp.StatusCode, u)
		assert.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"), u)
		assert.True(t, strings.HasPrefix(body, "go 1."), "a trace: %q", body[:min(len(body), 16)])
	}
	resp, body := fetch(t, base, false)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Contains(t, body, f.id)
}

// TestNegotiatedURLsAreCachedWrongly pins "negotiated URLs are cached
// wrongly": a URL that serves a page to browsers and data to other clients
// says so with Vary: Accept on both, and neither is cached for a year, so
// that no cache replays the download where the page belongs, or the page
// where the data does. /ID.trace serves only the trace, and stays
// immutable.
func TestNegotiatedURLsAreCachedWrongly(t *testing.T) {
	srv, f := newServer(t)
	base := srv.URL + "/snapshots/"
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	negotiated := []string{
		base,
		base + f.id,
		base + f.id + "?span=" + f.spanID,
		base + f.id + "?trace=" + f.traceID,
		base + "UNKNOWN",
	}
	for _, accept := range []string{"text/html,application/xhtml+xml", "*/*"} {
		for _, u := range negotiated {
			req, err := http.NewRequest(http.MethodGet, u, nil)
			require.NoError(t, err)
			req.Header.Set("Accept", accept)
			resp, err := noFollow.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Contains(t, resp.Header.Values("Vary"), "Accept", "%s, Accept %s: status %d", u, accept, resp.StatusCode)
			assert.NotContains(t, resp.Header.Get("Cache-Control"), "immutable", "%s, Accept %s", u, accept)
		}
		resp, body := fetch(t, base+f.id+".trace", accept != "*/*", "Accept", accept)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.True(t, strings.HasPrefix(body, "go 1."), "the trace, whatever the Accept")
		assert.Contains(t, resp.Header.Get("Cache-Control"), "immutable", "its own URL never changes content")
	}
}

func TestPageErrors(t *testing.T) {
	srv, f := newServer(t)
	base := srv.URL + "/snapshots/"
	tests := []struct {
		path string
		want int
	}{
		{"UNKNOWN", http.StatusNotFound},
		{f.id + "?span=nothex", http.StatusBadRequest},
		{f.id + "?trace=nothex", http.StatusBadRequest},
		{"..%2f..%2fetc%2fpasswd", http.StatusBadRequest},
		{"a%00b", http.StatusBadRequest},
	}
	for _, tt := range tests {
		resp, body := fetch(t, base+tt.path, true)
		assert.Equal(t, tt.want, resp.StatusCode, tt.path)
		assert.NotContains(t, body, "root:", tt.path)
	}
	resp, body := fetch(t, base+"UNKNOWN", true)
	assert.Contains(t, body, "retention")
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")

	// A span the snapshot does not hold gets a page that says so.
	resp, body = fetch(t, base+f.id+"?span=00000000000000aa", true)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "cannot explain the span")
}

func TestPagesAuth(t *testing.T) {
	srv, f := newServer(t, viewer.WithBearerToken("tok"))
	base := srv.URL + "/snapshots/"
	for _, u := range []string{base, base + f.id, base + f.id + "?span=" + f.spanID, base + f.id + ".trace", base + "assets/style.css"} {
		for _, html := range []bool{true, false} {
			resp, body := fetch(t, u, html)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, u)
			assert.NotContains(t, body, f.spanID)
			assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), "a refusal carries the headers too")
			assert.NotEmpty(t, resp.Header.Get("Content-Security-Policy"))
		}
		resp, _ := fetch(t, u, true, "Authorization", "Bearer tok")
		assert.Equal(t, http.StatusOK, resp.StatusCode, u)
	}
}

// countingStore is a Store that counts the snapshot bytes read through it
// and can list many made-up snapshots.
type countingStore struct {
	snapstore.Store
	read  atomic.Int64
	extra []snapstore.Info
}

func (s *countingStore) List(ctx context.Context) ([]snapstore.Info, error) {
	infos, err := s.Store.List(ctx)
	return append(infos, s.extra...), err
}

func (s *countingStore) Open(ctx context.Context, id string) (io.ReadSeekCloser, snapstore.Info, error) {
	f, info, err := s.Store.Open(ctx, id)
	if err != nil {
		return nil, info, err
	}
	return &countingReader{f, &s.read}, info, nil
}

type countingReader struct {
	io.ReadSeekCloser
	n *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadSeekCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

func TestSpanPageIsComputedOnce(t *testing.T) {
	f := newFixture(t)
	store := &countingStore{Store: f.store}
	srv := httptest.NewServer(http.StripPrefix("/snapshots", viewer.NewHandler(store)))
	defer srv.Close()
	u := srv.URL + "/snapshots/" + f.id + "?span=" + f.spanID
	_, first := fetch(t, u, true)
	read := store.read.Load()
	require.Positive(t, read, "the first request reads the snapshot")
	_, second := fetch(t, u, true)
	assert.Equal(t, read, store.read.Load(), "the second is served from the cache")
	assert.Equal(t, first, second)
	assert.Contains(t, second, `id="verdict"`)

	// A span the snapshot does not list is analysed on every request, and
	// never takes a place in the cache.
	other := srv.URL + "/snapshots/" + f.id + "?span=0123456789abcdef"
	fetch(t, other, true)
	read = store.read.Load()
	fetch(t, other, true)
	assert.Greater(t, store.read.Load(), read, "not cached")
}

func TestIndexIsCapped(t *testing.T) {
	f := newFixture(t)
	store := &countingStore{Store: f.store}
	for i := range 250 {
		store.extra = append(store.extra, snapstore.Info{ID: fmt.Sprintf("OLD%04d", i), Reason: "latency"})
	}
	srv := httptest.NewServer(http.StripPrefix("/snapshots", viewer.NewHandler(store)))
	defer srv.Close()
	resp, body := fetch(t, srv.URL+"/snapshots/", true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, f.id, "the newest are listed")
	assert.Contains(t, body, "OLD0198")
	assert.NotContains(t, body, "OLD0199", "200 at most")
	assert.Contains(t, body, "51 older snapshots are not listed here")
}

// storedVerdict is a store whose spans carry a verdict, as a diagnoser
// leaves them.
type storedVerdict struct {
	snapstore.Store
	verdict string
}

func (s storedVerdict) Open(ctx context.Context, id string) (io.ReadSeekCloser, snapstore.Info, error) {
	r, info, err := s.Store.Open(ctx, id)
	for i := range info.Spans {
		info.Spans[i].Verdict = s.verdict
	}
	return r, info, err
}

// The span page re-ran the analysis from the trace alone, which does not
// hold a span's status: a failed span's page lost the error its stored
// verdict leads with.
func TestSpanPageDropsTheErrorOfAFailedSpan(t *testing.T) {
	f := newFixture(t)
	const verdict = "error: Unavailable from inventory.Inventory/Reserve: connection refused; then 97% blocked on sync.Mutex"
	srv := httptest.NewServer(http.StripPrefix("/snapshots", viewer.NewHandler(storedVerdict{f.store, verdict})))
	defer srv.Close()
	resp, body := fetch(t, srv.URL+"/snapshots/"+f.id+"?span="+f.spanID, true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "error: Unavailable from inventory.Inventory/Reserve: connection refused")
	assert.Contains(t, body, "blocked.mutex", "with the timeline of the analysis")
}

// TestSnapshotPageShowsTheCrashOutput: a crash snapshot's page shows what
// the crashed process's runtime wrote, escaped.
func TestCrashSnapshotPageListsTheOpenSpans(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(http.StripPrefix("/snapshots", viewer.NewHandler(f.crash)))
	defer srv.Close()
	resp, body := fetch(t, srv.URL+"/snapshots/"+f.crashID, true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "<h2>Spans open when it died</h2>")
	assert.Contains(t, body, `<a href="`+f.crashID+`?span=`+f.openSpanID+`">POST /pay</a>`)
	// The spans that ended before the snapshot are not listed.
	assert.NotContains(t, body, "GET /checkout")
	assert.NotContains(t, body, "could not be read")

	// The open span's page diagnoses what the window holds of it.
	resp, body = fetch(t, srv.URL+"/snapshots/"+f.crashID+"?span="+f.openSpanID, true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "not ended when the snapshot was taken")
}

func TestSnapshotPageShowsTheCrashOutput(t *testing.T) {
	store, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	now := time.Now()
	info, err := store.Save(t.Context(), &otelfr.Snapshot{ID: "CRASH", Reason: otelfr.ReasonCrash, Data: []byte("go 1.26 trace\x00\x00\x00"),
		Start: now.Add(-time.Second), End: now, TakenAt: now, CrashOutput: "panic: <boom>\n\ngoroutine 1 [running]:\nmain.main()\n"})
	require.NoError(t, err)
	srv := httptest.NewServer(http.StripPrefix("/snapshots", viewer.NewHandler(store)))
	defer srv.Close()
	resp, body := fetch(t, srv.URL+"/snapshots/"+info.ID, true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "<h2>Crash output</h2>")
	assert.Contains(t, body, "panic: &lt;boom&gt;\n\ngoroutine 1 [running]:\nmain.main()\n")
	assert.Contains(t, body, "The trace could not be read for its open spans", "not a real trace")

	// Other snapshots have no such section.
	_, err = store.Save(t.Context(), &otelfr.Snapshot{ID: "OTHER", Reason: "latency", Data: []byte("go 1.26 trace\x00\x00\x00"), Start: now.Add(-time.Second), End: now, TakenAt: now})
	require.NoError(t, err)
	_, body = fetch(t, srv.URL+"/snapshots/OTHER", true)
	assert.NotContains(t, body, "Crash output")
	assert.NotContains(t, body, "Spans open when it died")
}
