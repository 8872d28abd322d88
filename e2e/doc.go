// Package e2e holds the end-to-end test of otelfr against a real Jaeger:
// Jaeger v2 built from the Go module proxy (see tools/jaeger), the demo
// under load exporting to it over OTLP, and assertions made through
// Jaeger's query API and the demo's snapshot handler.
//
// The test is behind the e2e build tag, so that `go test ./...` does not
// run it; with the tag it fails, rather than skips, when it has no Jaeger
// binary. Run it with
//
//	scripts/e2e.sh
//
// which builds Jaeger into ${XDG_CACHE_HOME:-~/.cache}/otelfr once (about
// 116 MiB, several minutes on 2 cores), then runs
// `go test -tags e2e -count=1 -v ./e2e/` with OTELFR_JAEGER_BIN set.
package e2e
