#!/usr/bin/env bash
# End-to-end tests against a real Jaeger and, for the fleet, a real S3
# server: builds Jaeger v2 and SeaweedFS from the Go module proxy once
# (tools/jaeger and tools/seaweedfs pin them in modules of their own),
# caches the binaries outside the repository, and runs the e2e tests.
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
	# shellcheck source=scripts/cached-build.sh
	. scripts/cached-build.sh
	version=$(cd tools/jaeger && go list -m -f '{{.Version}}' github.com/jaegertracing/jaeger)
	OTELFR_JAEGER_BIN=$(cached_build jaeger tools/jaeger github.com/jaegertracing/jaeger \
		github.com/jaegertracing/jaeger/cmd/jaeger \
		-ldflags "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$version")
fi
export OTELFR_JAEGER_BIN
# The fleet test's S3 server (scripts/test.sh has it already).
if [ -z "${OTELFR_WEED_BIN:-}" ]; then
	OTELFR_WEED_BIN=$(scripts/seaweedfs.sh)
fi
export OTELFR_WEED_BIN

# TestCauses alone runs the demo for 5 minutes: more than go test's
# default 10-minute timeout leaves for the whole package.
go test -tags e2e -count=1 -v -timeout 30m "$@" ./e2e/
