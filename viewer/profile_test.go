package viewer_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSpanProfiles downloads the span's profiles linked from its page, and
// reads them as `go tool pprof` does: the block profile holds the span's
// wait on the fixture's mutex.
func TestSpanProfiles(t *testing.T) {
	srv, f := newServer(t)
	base := srv.URL + "/snapshots/"
	_, page := fetch(t, base+f.id+"?span="+f.spanID, true)
	for _, kind := range []string{"block", "net", "syscall", "sched"} {
		link := f.id + ".pprof?span=" + f.spanID + "&amp;kind=" + kind
		assert.Contains(t, page, `href="`+link+`"`, "the span page links the %s profile", kind)
		resp, body := fetch(t, base+strings.ReplaceAll(link, "&amp;", "&"), false)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", kind, body)
		assert.Contains(t, resp.Header.Get("Content-Disposition"), "otelfr-"+f.id+"-"+f.spanID+"-"+kind+".pb.gz")
		assert.Equal(t, "default-src 'none'; frame-ancestors 'none'", resp.Header.Get("Content-Security-Policy"))
		p, err := profile.Parse(bytes.NewReader([]byte(body)))
		require.NoError(t, err, kind)
		require.NoError(t, p.CheckValid())
		if kind != "block" {
			continue
		}
		var delay time.Duration
		onMutex := false
		for _, s := range p.Sample {
			delay += time.Duration(s.Value[1])
			for _, l := range s.Location {
				if strings.HasPrefix(l.Line[0].Function.Name, "sync.(*Mutex).Lock") {
					onMutex = true
				}
			}
		}
		assert.True(t, onMutex, "the wait on the mutex is in the block profile")
		assert.Greater(t, delay, 50*time.Millisecond, "most of the span's 120 ms wait")
	}

	for _, tt := range []struct{ name, url string }{
		{"unknown kind", f.id + ".pprof?span=" + f.spanID + "&kind=heap"},
		{"bad span", f.id + ".pprof?span=xyz&kind=block"},
		{"bad id", "..pprof?span=" + f.spanID + "&kind=block"},
	} {
		resp, _ := fetch(t, base+tt.url, false)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, tt.name)
	}
	resp, _ := fetch(t, base+"20000101T000000Z-0000000000000000.pprof?span="+f.spanID+"&kind=block", false)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "an unknown snapshot")
}
