package viewer

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

//go:embed assets/*
var assets embed.FS

// pageCSP lets pages load only the embedded stylesheet, and submit forms
// (the index's filter, a GET) only to the viewer; no script runs.
const pageCSP = "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// NewHandler returns the viewer for the snapshots in store; see the
// package documentation for its routes. Mount it with http.StripPrefix.
func NewHandler(store snapstore.Store, opts ...Option) http.Handler {
	c := newConfig(opts)
	v := &viewer{
		store:    store,
		raw:      rawHandler(store, c),
		tmpl:     templates,
		analyses: make(chan struct{}, maxAnalyses),
		pages:    newPageCache(spanPageCacheSize),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", v.index)
	mux.HandleFunc("GET /assets/style.css", v.style)
	mux.HandleFunc("GET /causes", v.causes)
	mux.HandleFunc("GET /causes.json", v.causesJSON)
	mux.HandleFunc("GET /{file}", v.page)
	mux.Handle("/", v.raw)
	return secureHeaders(authenticate(c, mux))
}

// secureHeaders sets the pages' security headers on every response, so
// that those written elsewhere (the mux's redirects to a cleaned path and
// 405s, the authentication's 401s) carry them too. The raw routes replace
// the policy with their own, stricter one.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

var templates = template.Must(template.New("").Funcs(funcs).ParseFS(assets, "assets/*.html"))

// Limits that keep the viewer cheap to serve, whoever asks: a span page
// reads its whole snapshot and parses part of it.
const (
	// indexLimit caps the snapshots listed on the index page (the newest)
	// of a store that does not page; one that does is read a page at a
	// time (indexPageSize).
	indexLimit = 200
	// maxAnalyses caps the span pages being computed at once; more
	// requests wait for a slot or for their own context to end.
	maxAnalyses = 2
	// spanPageCacheSize is how many computed span pages are kept: a
	// snapshot never changes, so neither does its page.
	spanPageCacheSize = 32
)

type viewer struct {
	store    snapstore.Store
	raw      http.Handler
	tmpl     *template.Template
	analyses chan struct{} // semaphore of maxAnalyses
	pages    *pageCache
}

// wantsHTML reports whether the client asked for a page rather than data:
// browsers do, curl and `go tool trace` downloads do not. Every response
// of a route that asks it carries Vary: Accept, so that no cache serves
// one kind of client what the other asked for.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func (v *viewer) style(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	http.ServeFileFS(w, r, assets, "assets/style.css")
}

func (v *viewer) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Accept")
	if !wantsHTML(r) {
		v.raw.ServeHTTP(w, r)
		return
	}
	q, err := parseListQuery(r.URL.Query())
	if err != nil {
		v.fail(w, r, err)
		return
	}
	page, err := readIndex(r.Context(), v.store, q)
	if err != nil {
		if r.Context().Err() == nil {
			v.fail(w, r, err)
		} // else the client is gone
		return
	}
	v.render(w, http.StatusOK, "index.html", page)
}

func (v *viewer) page(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("file")
	if base, ok := strings.CutSuffix(id, profileExt); ok {
		v.profile(w, r, base)
		return
	}
	if !snapstore.ValidID(id) {
		v.raw.ServeHTTP(w, r) // ID.trace, ID.json, or the raw handler's 400
		return
	}
	w.Header().Add("Vary", "Accept")
	if !wantsHTML(r) {
		v.raw.ServeHTTP(w, r) // the trace, or the raw handler's 404
		return
	}
	f, info, err := v.store.Open(r.Context(), id)
	if err != nil {
		v.fail(w, r, err)
		return
	}
	defer f.Close()
	spanHex := r.URL.Query().Get("span")
	if spanHex == "" {
		traceHex := strings.ToLower(r.URL.Query().Get("trace"))
		if traceHex != "" {
			if _, err := trace.TraceIDFromHex(traceHex); err != nil {
				v.fail(w, r, errBadTrace)
				return
			}
		}
		// A link that knows the trace but not the span (one made before
		// otelfr.snapshot.span_id, or by hand): the span page when the
		// snapshot covers one anomalous span of that trace, else the
		// snapshot's page narrowed to that trace, never another trace's
		// spans in its place.
		if sid, ok := onlySpanOf(info, traceHex); ok {
			w.Header().Set("Location", "?span="+sid) // relative: keeps the mount prefix
			w.WriteHeader(http.StatusSeeOther)
			return
		}
		page := newSnapshotPage(info, traceHex, r)
		if info.Reason == otelfr.ReasonCrash {
			if err := v.openSpans(r.Context(), f, &page); err != nil {
				return // the client is gone
			}
		}
		v.render(w, http.StatusOK, "snapshot.html", page)
		return
	}
	sid, err := trace.SpanIDFromHex(spanHex)
	if err != nil {
		v.fail(w, r, errBadSpan)
		return
	}
	page, err := v.spanPage(r.Context(), f, info, sid)
	if err != nil {
		if r.Context().Err() == nil {
			v.fail(w, r, err)
		} // else the client is gone
		return
	}
	// A cached page keeps its diagnosis, which never changes, but shows
	// the snapshot as it is now: Pending, say, is cleared by its upload.
	page.Info = info
	v.render(w, http.StatusOK, "span.html", page)
}

// openSpans lists on a crash snapshot's page the spans open when the
// process died, read from the snapshot's data in f, at most maxAnalyses
// at a time. It returns ctx's error if ctx ends while it waits for its
// turn; an unreadable trace is told on the page.
func (v *viewer) openSpans(ctx context.Context, f io.Reader, page *snapshotPage) error {
	select {
	case v.analyses <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-v.analyses }()
	data, err := io.ReadAll(f)
	if err == nil {
		page.Open, err = analysis.OpenSpans(data)
	}
	if err != nil {
		page.OpenErr = err.Error()
	}
	page.Crash = true
	return nil
}

// spanPage returns the span's page from the cache, or computes it, at most
// maxAnalyses at a time, from the snapshot's data in f. It returns ctx's
// error if ctx ends while it waits for its turn.
func (v *viewer) spanPage(ctx context.Context, f io.Reader, info snapstore.Info, sid trace.SpanID) (spanPage, error) {
	key := info.ID + "?" + sid.String()
	if page, ok := v.pages.get(key); ok {
		return page, nil
	}
	select {
	case v.analyses <- struct{}{}:
	case <-ctx.Done():
		return spanPage{}, ctx.Err()
	}
	defer func() { <-v.analyses }()
	// Another request may have computed it while this one waited.
	if page, ok := v.pages.get(key); ok {
		return page, nil
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return spanPage{}, err
	}
	page := newSpanPage(info, sid, data)
	// Only the pages of spans the snapshot lists: another span ID, or one
	// whose record is not in the store yet, is analysed without its trace
	// ID and interval, and must not crowd out the real ones.
	if page.Ref != nil {
		v.pages.put(key, page)
	}
	return page, nil
}

var (
	errBadSpan  = errors.New("span must be 16 hex digits")
	errBadTrace = errors.New("trace must be 32 hex digits")
)

// notFound is the page of a snapshot the store does not hold. Over a
// fleet's bucket, a link followed from a span at once may name a snapshot
// still in its replica's spool, which the bucket holds only once uploaded.
const notFound = "No such snapshot: the ID is unknown, removed by retention, or not yet uploaded from the replica that took it: reload in a while."

// onlySpanOf returns the span ID of the one anomalous span of the trace
// traceHex (lowercase) that the snapshot covers; false when there is none
// or more than one.
func onlySpanOf(info snapstore.Info, traceHex string) (string, bool) {
	if traceHex == "" {
		return "", false
	}
	found := ""
	for _, s := range info.Spans {
		if !strings.EqualFold(s.TraceID, traceHex) {
			continue
		}
		if found != "" && found != s.SpanID {
			return "", false
		}
		found = s.SpanID
	}
	if _, err := trace.SpanIDFromHex(found); err != nil {
		return "", false
	}
	return found, true
}

func (v *viewer) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, "The snapshot store failed; see the service's logs."
	switch {
	case errors.Is(err, snapstore.ErrNotFound):
		status, msg = http.StatusNotFound, notFound
	case errors.Is(err, snapstore.ErrInvalidID), errors.Is(err, errBadSpan), errors.Is(err, errBadTrace),
		errors.Is(err, errBadPage), errors.Is(err, errBadFilter), errors.Is(err, errStalePage):
		status, msg = http.StatusBadRequest, err.Error()
	default:
		otel.Handle(err)
	}
	v.render(w, status, "error.html", errorPage{Status: status, Message: msg})
}

func (v *viewer) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := v.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		otel.Handle(err)
		http.Error(w, "rendering failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// pageCache keeps the most recently computed span pages.
type pageCache struct {
	mu    sync.Mutex
	size  int
	pages map[string]spanPage
	order []string // oldest first
}

func newPageCache(size int) *pageCache {
	return &pageCache{size: size, pages: make(map[string]spanPage, size)}
}

func (c *pageCache) get(key string) (spanPage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pages[key]
	return p, ok
}

func (c *pageCache) put(key string, p spanPage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pages[key]; ok {
		return
	}
	if len(c.order) == c.size {
		delete(c.pages, c.order[0])
		c.order = c.order[1:]
	}
	c.pages[key] = p
	c.order = append(c.order, key)
}
