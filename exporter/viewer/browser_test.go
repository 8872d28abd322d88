package viewer_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	xtrace "golang.org/x/exp/trace"
)

// chromiumPath finds Debian's chromium. CI installs it (.ci/run), so there
// a missing browser fails the test; elsewhere it skips.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; .ci/run installs it with apt-get")
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// TestSpanPageInBrowser opens the span page that otelfr.snapshot.url
// points to in a real headless Chromium: the verdict and a timeline with a
// lane per goroutine render, and the download link returns a trace that
// parses.
func TestSpanPageInBrowser(t *testing.T) {
	exe := chromiumPath(t)
	srv, f := newServer(t)
	pageURL := srv.URL + "/snapshots/" + f.id + "?span=" + f.spanID

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	start := time.Now()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(pageURL),
		chromedp.WaitVisible("#verdict"),
	))
	verdict, err := chromedp.Run(ctx, chromedp.Text("#verdict"))
	require.NoError(t, err)
	t.Logf("verdict shown %v after navigation: %q", time.Since(start), verdict)
	count := func(sel string) int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("`+sel+`").length`))
		require.NoError(t, err)
		return n
	}
	lanes, goroutines := count("svg.timeline g.lane"), count("table.buckets tbody tr")
	download, err := chromedp.Run(ctx, chromedp.AttributeValue("a.download", "href"))
	require.NoError(t, err)
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)

	assert.Contains(t, verdict, "sync.Mutex")
	require.Positive(t, goroutines)
	assert.Equal(t, goroutines, lanes, "one lane per goroutine")

	path := filepath.Join(t.TempDir(), "span-page.png")
	require.NoError(t, os.WriteFile(path, shot, 0o600))
	t.Logf("screenshot: %s", path)
	if out := os.Getenv("OTELFR_UPDATE_SCREENSHOT"); out != "" {
		require.NoError(t, os.WriteFile(out, shot, 0o644))
	}

	base, err := url.Parse(pageURL)
	require.NoError(t, err)
	ref, err := base.Parse(download.Value)
	require.NoError(t, err)
	resp, err := http.Get(ref.String())
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r, err := xtrace.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	n := 0
	for {
		_, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		n++
	}
	assert.Positive(t, n, "the download is a trace that parses")
}
