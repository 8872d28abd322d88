package viewer

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// profileExt is the suffix of a span's profile route:
// /ID.pprof?span=SPANID&kind=KIND.
const profileExt = ".pprof"

// profile serves the profile of kind (analysis.ProfileKinds) of a span in
// snapshot id, in pprof's format: `go tool pprof` opens it. It is computed
// as a span page is, at most maxAnalyses at a time.
func (v *viewer) profile(w http.ResponseWriter, r *http.Request, id string) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	if !snapstore.ValidID(id) {
		http.Error(w, snapstore.ErrInvalidID.Error(), http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	sid, err := trace.SpanIDFromHex(q.Get("span"))
	if err != nil {
		http.Error(w, errBadSpan.Error(), http.StatusBadRequest)
		return
	}
	kind, err := analysis.ParseProfileKind(q.Get("kind"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f, info, err := v.store.Open(r.Context(), id)
	if err != nil {
		failData(w, err)
		return
	}
	defer f.Close()
	select {
	case v.analyses <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	defer func() { <-v.analyses }()
	data, err := io.ReadAll(f)
	if err != nil {
		http.Error(w, "reading the snapshot failed", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	switch err := analysis.WriteProfile(&buf, data, spanOf(info, sid), kind); {
	case errors.Is(err, analysis.ErrSpanNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Disposition", `attachment; filename="otelfr-`+id+"-"+sid.String()+"-"+string(kind)+`.pb.gz"`)
	// A snapshot never changes, and neither does a profile of it.
	hd.Set("Cache-Control", "private, max-age=31536000, immutable")
	_, _ = w.Write(buf.Bytes())
}

// spanOf returns the span sid as the snapshot's record of it tells
// (trace ID, name, interval), or by its ID alone when it has none.
func spanOf(info snapstore.Info, sid trace.SpanID) analysis.Span {
	span := analysis.Span{SpanID: sid}
	for _, ref := range info.Spans {
		if strings.EqualFold(ref.SpanID, sid.String()) {
			span.TraceID, _ = trace.TraceIDFromHex(ref.TraceID)
			span.Name, span.Start, span.End = ref.Name, ref.Start, ref.End
		}
	}
	return span
}
