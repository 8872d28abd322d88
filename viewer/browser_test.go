package viewer_test

import (
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/internal/browsertest"
	"github.com/otelfr/otel-flightrecorder/internal/testutil"
)

// TestSpanPageInBrowser opens the span page that otelfr.snapshot.url
// points to in a real headless Chromium: the verdict and a timeline with a
// lane per goroutine render, and the download link returns a trace that
// parses.
func TestSpanPageInBrowser(t *testing.T) {
	srv, f := newServer(t)
	pageURL := srv.URL + "/snapshots/" + f.id + "?span=" + f.spanID

	ctx := browsertest.New(t, 60*time.Second)

	start := time.Now()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(pageURL),
		chromedp.WaitVisible("#verdict"),
	))
	verdict, err := chromedp.Run(ctx, chromedp.Text("#verdict"))
	require.NoError(t, err)
	t.Logf("verdict shown %v after navigation: %q", time.Since(start), verdict)
	lanes, goroutines := browsertest.Count(t, ctx, "svg.timeline g.lane"), browsertest.Count(t, ctx, "table.buckets tbody tr")
	download, err := chromedp.Run(ctx, chromedp.AttributeValue("a.download", "href"))
	require.NoError(t, err)
	browsertest.Screenshot(t, ctx, "viewer-fixture-span.png")

	assert.Contains(t, verdict, "sync.Mutex")
	require.Positive(t, goroutines)
	assert.Equal(t, goroutines, lanes, "one lane per goroutine")

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
	assert.NotEmpty(t, testutil.ReadTrace(t, data), "the download is a trace that parses")
}

// TestCausesPageInBrowser opens the causes page, filtered to one span
// name, in a real headless Chromium, and follows its example link to the
// span's page.
func TestCausesPageInBrowser(t *testing.T) {
	srv, f := newServer(t)
	ctx := browsertest.New(t, 60*time.Second)

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/snapshots/"),
		chromedp.WaitVisible("a.causes-link"),
		chromedp.Click("a.causes-link"),
		chromedp.WaitVisible("table.causes"),
	))
	groups := browsertest.Count(t, ctx, "table.causes tr.group")
	assert.Equal(t, 3, groups, "the fixture's three span names, one cause each")
	assert.Equal(t, groups, browsertest.Count(t, ctx, "table.causes svg.spark polyline"), "a sparkline per group")
	browsertest.Screenshot(t, ctx, "viewer-causes.png")

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/snapshots/causes?span="+url.QueryEscape("GET /checkout")),
		chromedp.WaitVisible("a.example"),
		chromedp.Click("a.example"),
		chromedp.WaitVisible("#verdict"),
	))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	assert.Equal(t, srv.URL+"/snapshots/"+f.id+"?span="+f.spanID, loc)
	verdict, err := chromedp.Run(ctx, chromedp.Text("#verdict"))
	require.NoError(t, err)
	assert.Contains(t, verdict, "sync.Mutex")
}
