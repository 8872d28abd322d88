#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, and nothing that is
# already there: Debian's chromium (the viewer's real-browser tests) and the
# Go modules of the four modules in this repository (the main one,
# tools/jaeger and tools/seaweedfs for the servers the tests run, bench for
# the benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
	sudo=""
	if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
		sudo=sudo
	fi
	echo "setup: installing chromium with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update
	$sudo apt-get install -y chromium
fi

go mod download
(cd tools/jaeger && go mod download)
(cd tools/seaweedfs && go mod download)
(cd bench && go mod download)
