package viewer_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/internal/snaptest"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

func newTestServer(t *testing.T) (*httptest.Server, *snapstore.DirStore) {
	t.Helper()
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	for i := range 2 {
		_, err := st.Save(t.Context(), snaptest.Snapshot(i, 100+i))
		require.NoError(t, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/snapshots/", http.StripPrefix("/snapshots", viewer.NewHandler(st)))
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
		var list []snapstore.Info
		require.NoError(t, json.Unmarshal(body, &list))
		assert.Equal(t, []string{"SNAP01", "SNAP00"}, ids(list))
	}

	for _, path := range []string{"/SNAP01", "/SNAP01.trace"} {
		resp, body := get(t, base+path)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, snaptest.Snapshot(1, 101).Data, body)
		assert.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
		assert.Equal(t, `attachment; filename="otelfr-SNAP01.trace"`, resp.Header.Get("Content-Disposition"))
		assert.Equal(t, "101", resp.Header.Get("Content-Length"))
	}

	resp, body := get(t, base+"/SNAP00.json")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var info snapstore.Info
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

func do(t *testing.T, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func TestHandlerAuth(t *testing.T) {
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	_, err = st.Save(t.Context(), snaptest.Snapshot(1, 10))
	require.NoError(t, err)
	routes := []string{"/", "/snapshots.json", "/SNAP01", "/SNAP01.trace", "/SNAP01.json", "/NOPE", "/bad%20id"}

	t.Run("off", func(t *testing.T) {
		srv := httptest.NewServer(viewer.NewHandler(st))
		defer srv.Close()
		resp, _ := do(t, http.MethodGet, srv.URL+"/SNAP01", nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
	t.Run("bearer", func(t *testing.T) {
		srv := httptest.NewServer(viewer.NewHandler(st, viewer.WithBearerToken("s3cret")))
		defer srv.Close()
		for _, r := range routes {
			resp, body := do(t, http.MethodGet, srv.URL+r, nil)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, r)
			assert.NotContains(t, string(body), "SNAP01", r)
			resp, _ = do(t, http.MethodGet, srv.URL+r, map[string]string{"Authorization": "Bearer wrong"})
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, r)
		}
		resp, _ := do(t, http.MethodGet, srv.URL+"/SNAP01.trace", map[string]string{"Authorization": "Bearer s3cret"})
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
	t.Run("basic", func(t *testing.T) {
		srv := httptest.NewServer(viewer.NewHandler(st, viewer.WithBasicAuth("ops", "pw")))
		defer srv.Close()
		for _, r := range routes {
			resp, _ := do(t, http.MethodGet, srv.URL+r, nil)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, r)
			assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic")
		}
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/SNAP01", nil)
		require.NoError(t, err)
		req.SetBasicAuth("ops", "pw")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		req.SetBasicAuth("ops", "nope")
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
}

func TestHandlerTrigger(t *testing.T) {
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	var reasons []string
	take := func(ctx context.Context, reason string) (snapstore.Info, error) {
		reasons = append(reasons, reason)
		if reason == "again" {
			return snapstore.Info{}, otelfr.ErrRateLimited
		}
		return st.Save(ctx, snaptest.Snapshot(len(reasons), 10))
	}
	srv := httptest.NewServer(viewer.NewHandler(st, viewer.WithTrigger(take), viewer.WithBearerToken("t")))
	defer srv.Close()
	auth := map[string]string{"Authorization": "Bearer t"}

	resp, _ := do(t, http.MethodPost, srv.URL+"/?reason=now", map[string]string{"X-Otelfr-Trigger": "1"})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "protected like the rest")
	resp, _ = do(t, http.MethodPost, srv.URL+"/?reason=now", auth)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "the anti-CSRF header is required")
	assert.Empty(t, reasons)

	auth["X-Otelfr-Trigger"] = "1"
	resp, body := do(t, http.MethodPost, srv.URL+"/?reason=now", auth)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var info snapstore.Info
	require.NoError(t, json.Unmarshal(body, &info))
	assert.Equal(t, "SNAP01", info.ID)
	assert.Equal(t, "SNAP01", resp.Header.Get("Location"))

	resp, _ = do(t, http.MethodPost, srv.URL+"/?reason=again", auth)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	resp, _ = do(t, http.MethodPost, srv.URL+"/", auth)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, []string{"now", "again", "http"}, reasons)
}

func TestHandlerWithoutTriggerRefusesPost(t *testing.T) {
	srv, _ := newTestServer(t)
	resp, _ := do(t, http.MethodPost, srv.URL+"/snapshots/", map[string]string{"X-Otelfr-Trigger": "1"})
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestHandlerListCap(t *testing.T) {
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	for i := range 5 {
		_, err := st.Save(t.Context(), snaptest.Snapshot(i, 1))
		require.NoError(t, err)
	}
	srv := httptest.NewServer(viewer.NewHandler(st, viewer.WithMaxList(2)))
	defer srv.Close()
	_, body := do(t, http.MethodGet, srv.URL+"/", nil)
	var list []snapstore.Info
	require.NoError(t, json.Unmarshal(body, &list))
	assert.Equal(t, []string{"SNAP04", "SNAP03"}, ids(list))
}

// TestNegotiatedURLsAreCachedWrongly pins "negotiated URLs are cached
// wrongly": /ID, with or without ?span= (the otelfr.snapshot.url of a
// span), is where package viewer serves a page to browsers, so a download
// from there must be revalidated, not kept for a year, or a browser's cache
// would replay it where the page belongs. /ID.trace serves only the trace
// and stays immutable.
// TestDownloadRevalidates pins the cost of the revalidation that
// Cache-Control: no-cache asks of a cache on /ID: a 304 without a body.
func TestDownloadRevalidates(t *testing.T) {
	srv, _ := newTestServer(t)
	base := srv.URL + "/snapshots/SNAP01"
	resp, _ := get(t, base)
	assert.Equal(t, "private, no-cache", resp.Header.Get("Cache-Control"))
	resp2, body := do(t, http.MethodGet, base, map[string]string{"If-Modified-Since": resp.Header.Get("Last-Modified")})
	assert.Equal(t, http.StatusNotModified, resp2.StatusCode)
	assert.Empty(t, body)
}

func ids(infos []snapstore.Info) []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.ID
	}
	return out
}
