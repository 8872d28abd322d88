package exporter

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// NewHandler returns an http.Handler that serves the snapshots in store.
// Its routes are relative to where it is mounted; mount it under a prefix
// with [http.StripPrefix]:
//
//	mux.Handle("/snapshots/", http.StripPrefix("/snapshots", exporter.NewHandler(store)))
//
// Routes (GET and HEAD only):
//
//	/                 the snapshots, newest first, as a JSON array of Info
//	/snapshots.json   the same
//	/ID               the raw execution trace, for `go tool trace`
//	/ID.trace         the same
//	/ID.json          the snapshot's Info as JSON
//
// and, with [WithTrigger], POST / to take a snapshot now.
//
// /ID.trace may be cached for a year (Cache-Control: immutable), as the
// trace of an ID never changes. /ID, the URL that otelfr.snapshot.url
// names (with ?span=), is where package viewer serves a page to browsers:
// it is sent with Cache-Control: private, no-cache, so that a cache
// revalidates it rather than replay a download where a page belongs.
//
// IDs that fail [ValidID] get 400; unknown or expired snapshots get 404.
// Every response carries X-Content-Type-Options: nosniff and a
// Content-Security-Policy that forbids active content. A snapshot holds
// stack traces and log messages: without [WithBearerToken] or
// [WithBasicAuth] the handler authenticates nobody, so serve it only on
// loopback or behind an authenticating proxy.
func NewHandler(store Store, opts ...HandlerOption) http.Handler {
	c := handlerConfig{maxList: DefaultMaxList}
	for _, o := range opts {
		c = o.applyHandler(c)
	}
	h := &handler{store: store, cfg: c}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.list)
	mux.HandleFunc("GET /snapshots.json", h.list)
	mux.HandleFunc("GET /{file}", h.file)
	if c.trigger != nil {
		mux.HandleFunc("POST /{$}", h.take)
	}
	return securityHeaders(authenticate(c, mux))
}

type handler struct {
	store Store
	cfg   handlerConfig
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		hd.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	infos, err := h.store.List(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	if len(infos) > h.cfg.maxList {
		infos = infos[:h.cfg.maxList]
	}
	writeJSON(w, infos)
}

func (h *handler) file(w http.ResponseWriter, r *http.Request) {
	id, ext := r.PathValue("file"), ""
	for _, e := range []string{traceExt, metaExt} {
		if base, ok := strings.CutSuffix(id, e); ok {
			id, ext = base, e
			break
		}
	}
	if !ValidID(id) {
		http.Error(w, ErrInvalidID.Error(), http.StatusBadRequest)
		return
	}
	f, info, err := h.store.Open(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	defer f.Close()
	if ext == metaExt {
		writeJSON(w, info)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Disposition", `attachment; filename="otelfr-`+id+`.trace"`)
	if ext == traceExt {
		// A snapshot never changes, and nothing else is served here.
		hd.Set("Cache-Control", "private, max-age=31536000, immutable")
	} else {
		// A viewer mounted at this URL serves a page here to browsers:
		// a cache must ask again, or it could replay the download where
		// the page belongs. Asking costs a 304 when nothing changed.
		hd.Set("Cache-Control", "private, no-cache")
	}
	http.ServeContent(w, r, "", info.TakenAt, f)
}

func (h *handler) take(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Otelfr-Trigger") != "1" {
		http.Error(w, "missing header X-Otelfr-Trigger: 1", http.StatusForbidden)
		return
	}
	reason := r.FormValue("reason")
	if reason == "" {
		reason = "http"
	}
	if len(reason) > 64 {
		reason = reason[:64]
	}
	info, err := h.cfg.trigger(r.Context(), reason)
	if errors.Is(err, otelfr.ErrRateLimited) {
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Location", info.ID)
	writeJSONStatus(w, http.StatusCreated, info)
}

func (h *handler) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		http.Error(w, "snapshot not found: unknown, or removed by retention", http.StatusNotFound)
	case errors.Is(err, ErrInvalidID):
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		otel.Handle(err)
		http.Error(w, "snapshot store error", http.StatusInternalServerError)
	}
}

func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
