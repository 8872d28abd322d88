#!/usr/bin/env bash
# cached_build NAME DIR MODULE PACKAGE [GO BUILD FLAGS...]
#
# Prints the path of a binary of PACKAGE, built from the Go module DIR (a
# module of this repository that pins MODULE) once and cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/otelfr/NAME-VERSION-SUM, where VERSION is
# MODULE's and SUM covers DIR's go.mod and go.sum. Progress goes to stderr.
# Sourced by scripts/e2e.sh and scripts/seaweedfs.sh.
cached_build() {
	local name=$1 dir=$2 module=$3 pkg=$4
	shift 4
	local version sum cache bin tmp start
	version=$(cd "$dir" && go list -m -f '{{.Version}}' "$module")
	# The cache key covers the whole module graph, not only the version.
	sum=$(sha256sum "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-12)
	cache="${XDG_CACHE_HOME:-$HOME/.cache}/otelfr"
	bin="$cache/$name-$version-$sum"
	if [ ! -x "$bin" ]; then
		mkdir -p "$cache"
		echo "$name: building $module $version into $bin (several minutes the first time)" >&2
		start=$(date +%s)
		tmp="$bin.tmp.$$"
		trap 'rm -f "$tmp"' EXIT
		(cd "$dir" && go build -trimpath "$@" -o "$tmp" "$pkg") >&2
		mv "$tmp" "$bin"
		echo "$name: built in $(( $(date +%s) - start ))s" >&2
	fi
	echo "$bin"
}
