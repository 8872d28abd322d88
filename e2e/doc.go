// Package e2e holds the end-to-end tests of otelfr against a real Jaeger:
// Jaeger v2 built from the Go module proxy (see tools/jaeger), the demo
// under load exporting to it over OTLP, and assertions made through
// Jaeger's query API and the demo's snapshot handler. TestFleet runs a
// fleet: two replicas of the demo writing to one bucket of a real S3
// server (SeaweedFS, see tools/seaweedfs), `otelfr serve` over it, and
// Jaeger, with the bucket stopped for 30s mid-run. TestCauses runs two
// replicas of the demo for 5 minutes on one file:// bucket, then `otelfr
// serve` over it, and checks its causes page against the demo's own
// incident log.
//
// The tests are behind the e2e build tag, so that `go test ./...` does not
// run them; with the tag they fail, rather than skip, when they have no
// Jaeger or SeaweedFS binary. Run them with
//
//	OTELFR_WEED_BIN=$(scripts/seaweedfs.sh) scripts/e2e.sh
//
// which builds Jaeger into ${XDG_CACHE_HOME:-~/.cache}/otelfr once (about
// 116 MiB, several minutes on 2 cores), then runs
// `go test -tags e2e -count=1 -v ./e2e/` with OTELFR_JAEGER_BIN set;
// scripts/seaweedfs.sh builds SeaweedFS there once and prints its path.
package e2e
