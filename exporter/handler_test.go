package exporter_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/exporter"
)

func newTestServer(t *testing.T) (*httptest.Server, *exporter.DirStore) {
	t.Helper()
	st, err := exporter.NewDirStore(t.TempDir())
	require.NoError(t, err)
	for i := range 2 {
		_, err := st.Save(t.Context(), fakeSnapshot(i, 100+i))
		require.NoError(t, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/snapshots/", http.StripPrefix("/snapshots", exporter.NewHandler(st)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, st
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func TestHandlerRoutes(t *testing.T) {
	srv, _ := newTestServer(t)
	base := srv.URL + "/snapshots"

	for _, path := range []string{"/", "/snapshots.json"} {
		resp, body := get(t, base+path)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		var list []exporter.Info
		require.NoError(t, json.Unmarshal(body, &list))
		assert.Equal(t, []string{"SNAP01", "SNAP00"}, ids(list))
	}

	for _, path := range []string{"/SNAP01", "/SNAP01.trace"} {
		resp, body := get(t, base+path)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, fakeSnapshot(1, 101).Data, body)
		assert.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
		assert.Equal(t, `attachment; filename="otelfr-SNAP01.trace"`, resp.Header.Get("Content-Disposition"))
		assert.Equal(t, "101", resp.Header.Get("Content-Length"))
	}

	resp, body := get(t, base+"/SNAP00.json")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var info exporter.Info
	require.NoError(t, json.Unmarshal(body, &info))
	assert.Equal(t, "SNAP00", info.ID)
	assert.Equal(t, int64(100), info.Size)

	// Range requests let a client resume a large download.
	req, err := http.NewRequest(http.MethodGet, base+"/SNAP01.trace", nil)
	require.NoError(t, err)
	req.Header.Set("Range", "bytes=0-9")
	rresp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	rresp.Body.Close()
	assert.Equal(t, http.StatusPartialContent, rresp.StatusCode)
}

func TestHandlerErrors(t *testing.T) {
	srv, _ := newTestServer(t)
	base := srv.URL + "/snapshots"
	tests := []struct {
		path string
		want int
	}{
		{"/UNKNOWN", http.StatusNotFound},
		{"/UNKNOWN.trace", http.StatusNotFound},
		{"/SNAP01.exe", http.StatusBadRequest},
		{"/SNAP01/extra", http.StatusNotFound},
		{"/bad%20id", http.StatusBadRequest},
		{"/..%2f..%2fetc%2fpasswd", http.StatusBadRequest},
		{"/%2e%2e", http.StatusBadRequest},
		{"/a%00b.trace", http.StatusBadRequest},
		{"/x.json.trace", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := get(t, base+tt.path)
			assert.Equal(t, tt.want, resp.StatusCode, "body: %s", body)
			assert.NotContains(t, string(body), "root:", "nothing outside the store is served")
		})
	}

	// Traversal with literal dots is cleaned by the mux and lands outside
	// the handler's prefix.
	resp, _ := get(t, base+"/../../etc/passwd")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	req, err := http.NewRequest(http.MethodPost, base+"/SNAP01", nil)
	require.NoError(t, err)
	presp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	presp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, presp.StatusCode)
}

func TestHandlerSecurityHeaders(t *testing.T) {
	srv, _ := newTestServer(t)
	for _, path := range []string{"/snapshots/", "/snapshots/SNAP01", "/snapshots/NOPE"} {
		resp, _ := get(t, srv.URL+path)
		assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'", path)
	}
}
