package exporter_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/otelfr/otel-flightrecorder/exporter"
)

// FuzzValidID checks that no accepted ID can name anything but a file in
// the store's directory.
func FuzzValidID(f *testing.F) {
	for _, seed := range []string{"ABC234", "..", "../x", "a/b", `a\b`, "a.trace", "", "%2e", "x\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !exporter.ValidID(id) {
			return
		}
		if strings.ContainsAny(id, `./\:%`+"\x00") || id == "" || len(id) > 64 {
			t.Fatalf("ValidID accepted %q", id)
		}
	})
}

// FuzzHandler requests arbitrary paths and queries: the handler never
// panics, never answers 5xx, and serves trace bytes only for stored IDs.
func FuzzHandler(f *testing.F) {
	for _, seed := range []string{"/", "/snapshots.json", "/SNAP01", "/SNAP01.trace", "/SNAP01.json", "/../etc/passwd",
		"/..%2f..%2fetc", "/%00", "/SNAP01?download=1", "//SNAP01", "/SNAP01.trace.json"} {
		f.Add(seed)
	}
	st, err := exporter.NewDirStore(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	if _, err := st.Save(f.Context(), fakeSnapshot(1, 64)); err != nil {
		f.Fatal(err)
	}
	h := exporter.NewHandler(st)
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
