#!/usr/bin/env bash
# End-to-end test against a real Jaeger: builds Jaeger v2 from the Go module
# proxy once (tools/jaeger pins it in a module of its own), caches the
# binary outside the repository, and runs the e2e test with it.
#
#	scripts/e2e.sh                 # what CI runs after the unit tests
#	OTELFR_JAEGER_BIN=/path/to/jaeger scripts/e2e.sh   # bring your own
#
# The first run builds Jaeger: several minutes on 2 cores, ~116 MiB, kept in
# ${XDG_CACHE_HOME:-$HOME/.cache}/otelfr/. Later runs take about a minute.
# Extra arguments go to `go test`, e.g. scripts/e2e.sh -run TestJaeger.
set -euo pipefail
cd "$(dirname "$0")/.."

export GOFLAGS="${GOFLAGS:--buildvcs=false}"

if [ -z "${OTELFR_JAEGER_BIN:-}" ]; then
	version=$(cd tools/jaeger && go list -m -f '{{.Version}}' github.com/jaegertracing/jaeger)
	# The cache key covers the whole module graph, not only Jaeger's version.
	sum=$(sha256sum tools/jaeger/go.mod tools/jaeger/go.sum | sha256sum | cut -c1-12)
	cache="${XDG_CACHE_HOME:-$HOME/.cache}/otelfr"
	OTELFR_JAEGER_BIN="$cache/jaeger-$version-$sum"
	if [ ! -x "$OTELFR_JAEGER_BIN" ]; then
		mkdir -p "$cache"
		echo "e2e: building Jaeger $version into $OTELFR_JAEGER_BIN (several minutes the first time)" >&2
		start=$(date +%s)
		tmp="$OTELFR_JAEGER_BIN.tmp.$$"
		trap 'rm -f "$tmp"' EXIT
		(cd tools/jaeger && go build -trimpath \
			-ldflags "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$version" \
			-o "$tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
		mv "$tmp" "$OTELFR_JAEGER_BIN"
		echo "e2e: built Jaeger in $(( $(date +%s) - start ))s" >&2
	fi
fi
export OTELFR_JAEGER_BIN

go test -tags e2e -count=1 -v "$@" ./e2e/
