package viewer

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel"

	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// rawHandler serves the routes that hand data, not pages, to clients:
// the JSON list, each snapshot's Info, the raw trace and the trigger. They
// carry a stricter Content-Security-Policy than the pages.
//
// /ID.trace may be cached for a year (Cache-Control: immutable), as the
// trace of an ID never changes. /ID, the URL that otelfr.snapshot.url
// names (with ?span=), is where browsers get a page: it is sent with
// Cache-Control: private, no-cache, so that a cache revalidates it rather
// than replay a download where a page belongs.
func rawHandler(store snapstore.Store, c config) http.Handler {
	h := &raw{store: store, cfg: c}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.list)
	mux.HandleFunc("GET /snapshots.json", h.list)
	mux.HandleFunc("GET /{file}", h.file)
	if c.trigger != nil {
		mux.HandleFunc("POST /{$}", h.take)
	}
	return dataHeaders(mux)
}

type raw struct {
	store snapstore.Store
	cfg   config
}

func dataHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		hd.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// list serves the newest snapshots, at most maxList, that match the
// query's service and instance (see readList).
func (h *raw) list(w http.ResponseWriter, r *http.Request) {
	q, err := parseListQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	infos, err := readList(r.Context(), h.store, q.filter, h.cfg.maxList)
	if err != nil {
		if r.Context().Err() == nil {
			h.fail(w, err)
		} // else the client is gone
		return
	}
	writeJSON(w, infos)
}

func (h *raw) file(w http.ResponseWriter, r *http.Request) {
	id, ext := r.PathValue("file"), ""
	for _, e := range []string{traceExt, jsonExt} {
		if base, ok := strings.CutSuffix(id, e); ok {
			id, ext = base, e
			break
		}
	}
	if !snapstore.ValidID(id) {
		http.Error(w, snapstore.ErrInvalidID.Error(), http.StatusBadRequest)
		return
	}
	f, info, err := h.store.Open(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	defer f.Close()
	if ext == jsonExt {
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

func (h *raw) take(w http.ResponseWriter, r *http.Request) {
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

// The suffixes of a snapshot's data routes.
const (
	traceExt = ".trace"
	jsonExt  = ".json"
)

func (h *raw) fail(w http.ResponseWriter, err error) { failData(w, err) }

// failData answers a data route's request that failed with err.
func failData(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, snapstore.ErrNotFound):
		http.Error(w, "snapshot not found: unknown, removed by retention, or not yet uploaded from the replica that took it: retry in a while", http.StatusNotFound)
	case errors.Is(err, snapstore.ErrInvalidID):
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
