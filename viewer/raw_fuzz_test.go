package viewer_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/otelfr/otel-flightrecorder/internal/snaptest"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

// FuzzHandler requests arbitrary paths and queries: the handler never
// panics, never answers 5xx, and serves trace bytes only for stored IDs.
func FuzzHandler(f *testing.F) {
	for _, seed := range []string{"/", "/snapshots.json", "/SNAP01", "/SNAP01.trace", "/SNAP01.json", "/../etc/passwd",
		"/..%2f..%2fetc", "/%00", "/SNAP01?download=1", "//SNAP01", "/SNAP01.trace.json"} {
		f.Add(seed)
	}
	st, err := snapstore.NewDirStore(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	if _, err := st.Save(f.Context(), snaptest.Snapshot(1, 64)); err != nil {
		f.Fatal(err)
	}
	h := viewer.NewHandler(st)
	f.Fuzz(func(t *testing.T, path string) {
		u, err := url.Parse(path)
		if err != nil || u.Host != "" || u.Scheme != "" {
			return
		}
		req := httptest.NewRequest(http.MethodGet, "http://x/", nil)
		req.URL = u
		req.RequestURI = u.RequestURI()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%q: %d %s", path, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusOK && rec.Header().Get("Content-Type") == "application/octet-stream" &&
			!strings.HasPrefix(strings.TrimPrefix(u.Path, "/"), "SNAP01") {
			t.Fatalf("%q served trace bytes", path)
		}
	})
}
