package viewer_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/otelfr/otel-flightrecorder/viewer"
)

// FuzzViewer requests arbitrary paths and queries, as a browser and as
// other clients, against a store holding a real snapshot: the viewer never
// panics, never answers 5xx, and every page carries its security headers.
// It also runs the analysis on whatever span ID the query names.
func FuzzViewer(f *testing.F) {
	fx := newFixture(f)
	for _, seed := range []string{
		"/", "/" + fx.id, "/" + fx.id + "?span=" + fx.spanID, "/" + fx.id + "?trace=" + fx.traceID,
		"/" + fx.id + "?span=0000000000000000", "/" + fx.id + "?span=zz", "/" + fx.id + "?trace=&span=",
		"/" + fx.id + ".trace", "/" + fx.id + ".json", "/snapshots.json", "/assets/style.css",
		"/../etc/passwd", "/..%2f..%2fetc", "/%00", "/" + fx.id + "?span=" + fx.spanID + "&span=1",
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	h := viewer.NewHandler(fx.store)
	f.Fuzz(func(t *testing.T, target string, html bool) {
		u, err := url.Parse(target)
		if err != nil || u.Host != "" || u.Scheme != "" {
			return
		}
		req := httptest.NewRequest(http.MethodGet, "http://x/", nil)
		req.URL = u
		req.RequestURI = u.RequestURI()
		if html {
			req.Header.Set("Accept", "text/html")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%q (html %v): %d %s", target, html, rec.Code, rec.Body)
		}
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
			if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") {
				t.Fatalf("%q: a page without its Content-Security-Policy", target)
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("%q: a page without X-Content-Type-Options", target)
			}
		}
	})
}
