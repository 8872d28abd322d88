package viewer

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"io"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
)

//go:embed assets/*
var assets embed.FS

// pageCSP lets pages load only the embedded stylesheet; no script runs.
const pageCSP = "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Option configures the viewer.
type Option interface {
	apply(config) config
}

type config struct {
	handlerOpts []exporter.HandlerOption
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

// WithHandlerOptions passes options to the exporter.NewHandler that serves
// the raw and JSON routes; its authentication options also protect every
// page of the viewer.
func WithHandlerOptions(opts ...exporter.HandlerOption) Option {
	return optionFunc(func(c config) config {
		c.handlerOpts = append(c.handlerOpts, opts...)
		return c
	})
}

// NewHandler returns the viewer for the snapshots in store; see the
// package documentation for its routes. Mount it with http.StripPrefix.
func NewHandler(store exporter.Store, opts ...Option) http.Handler {
	var c config
	for _, o := range opts {
		c = o.apply(c)
	}
	v := &viewer{store: store, raw: exporter.NewHandler(store, c.handlerOpts...), tmpl: templates}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", v.index)
	mux.HandleFunc("GET /assets/style.css", v.style)
	mux.HandleFunc("GET /{file}", v.page)
	mux.Handle("/", v.raw)
	return exporter.RequireAuth(mux, c.handlerOpts...)
}

var templates = template.Must(template.New("").Funcs(funcs).ParseFS(assets, "assets/*.html"))

type viewer struct {
	store exporter.Store
	raw   http.Handler
	tmpl  *template.Template
}

// wantsHTML reports whether the client asked for a page rather than data:
// browsers do, curl and `go tool trace` downloads do not.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func (v *viewer) style(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	http.ServeFileFS(w, r, assets, "assets/style.css")
}

func (v *viewer) index(w http.ResponseWriter, r *http.Request) {
	if !wantsHTML(r) {
		v.raw.ServeHTTP(w, r)
		return
	}
	infos, err := v.store.List(r.Context())
	if err != nil {
		v.fail(w, r, err)
		return
	}
	v.render(w, http.StatusOK, "index.html", indexPage{Snapshots: infos})
}

func (v *viewer) page(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("file")
	if !wantsHTML(r) || !exporter.ValidID(id) {
		v.raw.ServeHTTP(w, r) // raw data, or the raw handler's 400/404
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
		// A tracing UI's link that knows the trace but not the span (a
		// Jaeger link pattern can use the trace's ID, not the span's): the
		// span page when the snapshot covers one anomalous span of it.
		if sid, ok := onlySpanOf(info, r.URL.Query().Get("trace")); ok {
			w.Header().Set("Location", "?span="+sid) // relative: keeps the mount prefix
			w.WriteHeader(http.StatusSeeOther)
			return
		}
		v.render(w, http.StatusOK, "snapshot.html", newSnapshotPage(info, r))
		return
	}
	sid, err := trace.SpanIDFromHex(spanHex)
	if err != nil {
		v.fail(w, r, errBadSpan)
		return
	}
	data, err := io.ReadAll(f)
	if err != nil {
		v.fail(w, r, err)
		return
	}
	v.render(w, http.StatusOK, "span.html", newSpanPage(info, sid, data))
}

var errBadSpan = errors.New("span must be 16 hex digits")

// onlySpanOf returns the span ID of the one anomalous span of the trace
// traceHex that the snapshot covers; false when there is none or more than
// one.
func onlySpanOf(info exporter.Info, traceHex string) (string, bool) {
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
	case errors.Is(err, exporter.ErrNotFound):
		status, msg = http.StatusNotFound, "No such snapshot: the ID is unknown, or retention has removed it."
	case errors.Is(err, exporter.ErrInvalidID), errors.Is(err, errBadSpan):
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
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}
