#!/usr/bin/env bash
# Prints the path of a SeaweedFS `weed` binary, the S3-compatible server the
# object-storage tests start as a process (internal/testutil.StartS3).
# Builds it from the Go module proxy once (tools/seaweedfs pins it in a
# module of its own) and caches it outside the repository.
#
#	export OTELFR_WEED_BIN=$(scripts/seaweedfs.sh)
#	OTELFR_WEED_BIN=/path/to/weed scripts/seaweedfs.sh   # bring your own: printed as is
#
# The first run builds weed: about 7 minutes on 2 cores, ~230 MB, kept in
# ${XDG_CACHE_HOME:-$HOME/.cache}/otelfr/. Later runs only print the path.
# Progress goes to stderr; stdout carries the path alone.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${OTELFR_WEED_BIN:-}" ]; then
	echo "$OTELFR_WEED_BIN"
	exit 0
fi

export GOFLAGS="${GOFLAGS:--buildvcs=false}"

# shellcheck source=scripts/cached-build.sh
. scripts/cached-build.sh
cached_build weed tools/seaweedfs github.com/seaweedfs/seaweedfs github.com/seaweedfs/seaweedfs/weed
