#!/usr/bin/env bash
# Runs otelfr's benchmarks (the bench/ module) and prints one table: every
# measurement side by side, with its target and whether it is met.
#
#   scripts/bench.sh            # the full run, about 10 minutes; writes
#                               # BENCHMARKS.md and bench/results.json
#   scripts/bench.sh --quick    # 1-2 minutes, for CI: proves every benchmark
#                               # still builds and runs; writes nothing
#   scripts/bench.sh -items 1,3 # some items only (see bench/cmd/benchrun);
#                               # prints the table, writes nothing
#   scripts/bench.sh --bucket   # the object-storage benchmarks of
#                               # snapstore/bucketstore over a real S3 server
#                               # (SeaweedFS, scripts/seaweedfs.sh): the
#                               # viewer's index over 10,000 snapshots, and
#                               # the snapshot path, DirStore vs bucket;
#                               # about 3 minutes; prints, writes nothing
#   scripts/bench.sh --disk     # disk mode (otelfr.WithDisk) against the
#                               # memory ring, interleaved processes
#                               # (bench/cmd/diskmode); about 3 minutes;
#                               # prints, writes nothing
#
# BENCH_WORK=DIR keeps the scratch files (benchmark outputs, snapshots,
# per-anomaly timings) in DIR instead of a temporary directory.
#
# Everything listens on 127.0.0.1; every load is paced, bounded in count and
# time, and stops by itself; child processes are stopped by their PID.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# The object-storage benchmarks live beside the store, in the main module
# (BENCHMARKS.md, "Object storage"). --quick runs each once, to prove they
# still run; without OTELFR_WEED_BIN (and outside CI) the S3 parts skip.
bucket_bench() {
	local index=$1 path=$2
	cat /proc/loadavg
	go test -run '^$' -bench 'BenchmarkIndex' -benchtime "$index" -v ./snapstore/bucketstore
	go test -run '^$' -bench 'BenchmarkSnapshotPath' -benchtime "$path" -v ./snapstore/bucketstore
	cat /proc/loadavg
}
if [ "${1:-}" = "--bucket" ]; then
	OTELFR_WEED_BIN=$(scripts/seaweedfs.sh)
	export OTELFR_WEED_BIN
	bucket_bench 5x 30x
	exit
fi

# bench/ is a module of its own (its go.mod replaces the main module with
# ../), so that benchstat and the peer library stay out of the main go.mod.
# -mod=mod lets it follow the main module's requirements as they change.
export GOFLAGS="${GOFLAGS:--buildvcs=false} -mod=mod"

if [ -n "${BENCH_WORK:-}" ]; then
	work=$BENCH_WORK
	mkdir -p "$work"
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/otelfr-bench.XXXXXX")
	trap 'rm -rf "$work"' EXIT
fi

cd bench
go version
if [ "${1:-}" = "--disk" ]; then
	go run ./cmd/diskmode -rounds 5 -load 12s -rate 4000
	exit
fi
if [ "${1:-}" = "--quick" ]; then
	shift
	go vet ./...
	(cd "$root" && GOFLAGS="${GOFLAGS%-mod=mod}" bucket_bench 1x 1x)
	go run ./cmd/diskmode -rounds 1 -load 3s -snaps 1
	go build -o "$work/benchrun" ./cmd/benchrun
	exec_args=(-quick -work "$work/run" "$@")
elif [ $# -eq 0 ]; then
	go build -o "$work/benchrun" ./cmd/benchrun
	exec_args=(-work "$work/run" -out "$root/BENCHMARKS.md" -results "$root/bench/results.json" -command "scripts/bench.sh")
else
	go build -o "$work/benchrun" ./cmd/benchrun
	exec_args=(-work "$work/run" "$@")
fi
"$work/benchrun" -bench-dir "$root/bench" "${exec_args[@]}"
