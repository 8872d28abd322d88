// Package browsertest drives a real headless Chromium in tests, through
// chromedp.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ScreenshotEnv names the environment variable that, when set to a
// directory, makes browser tests also write their screenshots there, each
// under its own name (used to refresh the screenshot committed under docs/).
const ScreenshotEnv = "OTELFR_UPDATE_SCREENSHOT"

// Chromium returns the path of Debian's chromium. CI installs it (.ci/run
// does, and sets CI), so there a missing browser fails the test; elsewhere
// the test is skipped.
func Chromium(t testing.TB) string {
	t.Helper()
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

// New starts a headless Chromium with a window of 1400×1000 and a profile
// in a temporary directory, and returns a chromedp context for it that ends
// after timeout. The browser is stopped when the test ends.
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	exe := Chromium(t)
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
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancel() // closes the browser
		cancelAlloc()
	})
	return ctx
}

// Count returns how many elements match the CSS selector sel.
func Count(t testing.TB, ctx context.Context, sel string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(sel)+`).length`))
	if err != nil {
		t.Fatalf("counting %q: %v", sel, err)
	}
	return n
}

// Screenshot takes a full-page screenshot, writes it as name to the test's
// temporary directory, and also to the directory in ScreenshotEnv when that
// is set. It returns the PNG.
func Screenshot(t testing.TB, ctx context.Context, name string) []byte {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, shot, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if dir := os.Getenv(ScreenshotEnv); dir != "" {
		out := filepath.Join(dir, name)
		if err := os.WriteFile(out, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot also written to %s", out)
	}
	return shot
}
