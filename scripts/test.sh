#!/usr/bin/env bash
# Every test: vet, the unit and integration tests with the race detector,
# the fuzzers briefly, the benchmarks briefly, and the end-to-end test
# against a real Jaeger (Jaeger and SeaweedFS are built once from the Go
# module proxy and cached).
# scripts/setup.sh first installs what is missing (chromium, Go modules).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

scripts/setup.sh

go vet ./...
go vet -tags e2e ./e2e/
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
# A real S3 server for the object-storage tests: SeaweedFS, built once from
# the Go module proxy and cached like Jaeger (scripts/seaweedfs.sh).
OTELFR_WEED_BIN=$(scripts/seaweedfs.sh)
export OTELFR_WEED_BIN
go test -race -count=1 ./...

# Fuzzers run briefly, to prove they still run; seed corpora are committed.
# Budgets are counts of executions (seconds each here), not durations:
# with a duration, Go 1.26's fuzzing coordinator can fail a target with
# "context deadline exceeded" when its deadline races a busy worker
# (golang/go#75804, fixed in Go 1.27). FUZZTIME=5m runs each for 5 minutes.
fuzz() {
	go test -run '^$' -fuzz "^$1\$" -fuzztime "${FUZZTIME:-$3}" -fuzzminimizetime 200x "$2"
}
fuzz FuzzTraceWindow ./otelfr 100000x
fuzz FuzzConfigFromEnv ./otelfr 100000x
fuzz FuzzValidID ./snapstore 200000x
fuzz FuzzHandler ./viewer 50000x
fuzz FuzzViewer ./viewer 50000x
fuzz FuzzAnalyze ./analysis 500x

# The benchmarks, briefly: they still build and run (numbers: BENCHMARKS.md).
scripts/bench.sh --quick

scripts/e2e.sh
