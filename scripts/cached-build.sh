#!/usr/bin/env bash
# cached_build NAME DIR MODULE PACKAGE [GO BUILD FLAGS...]
#
# Prints the path of a binary of PACKAGE, built from the Go module DIR (a
# module of this repository that pins MODULE) once and cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/otelfr/NAME-VERSION-SUM, where VERSION is
# MODULE's and SUM covers DIR's go.mod and go.sum. Progress goes to stderr.
# It returns non-zero, printing nothing, when the build fails. Sourced by
# scripts/e2e.sh and scripts/seaweedfs.sh.
cached_build() {
	local name=$1 dir=$2 module=$3 pkg=$4
	shift 4
	local version sum cache bin tmp start
	version=$(cd "$dir" && go list -m -f '{{.Version}}' "$module") || return
	# The cache key covers the whole module graph, not only the version.
	sum=$(sha256sum "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-12) || return
	cache="${XDG_CACHE_HOME:-$HOME/.cache}/otelfr"
	bin="$cache/$name-$version-$sum"
	if [ ! -x "$bin" ]; then
		mkdir -p "$cache"
		echo "$name: building $module $version into $bin (several minutes the first time)" >&2
		start=$(date +%s)
		tmp="$bin.tmp.$$"
		# The trap runs after this function has returned, where its
		# locals are gone (and unset under set -u): it gets the path
		# itself, and is cleared once the binary is in place.
		# shellcheck disable=SC2064
		trap "rm -f -- $(printf %q "$tmp")" EXIT
		# Callers run this in $(...), where set -e does not reach: each
		# step that can fail returns the failure itself.
		(cd "$dir" && go build -trimpath "$@" -o "$tmp" "$pkg") >&2 || return
		mv "$tmp" "$bin" || return
		trap - EXIT
		echo "$name: built in $(( $(date +%s) - start ))s" >&2
	fi
	echo "$bin"
}
