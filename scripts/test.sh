#!/usr/bin/env bash
# Every test: vet, the unit and integration tests with the race detector,
# the fuzzers briefly, the benchmarks briefly, and the end-to-end test
# against a real Jaeger (built once from the Go module proxy and cached).
# scripts/setup.sh first installs what is missing (chromium, Go modules).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

scripts/setup.sh

go vet ./...
go vet -tags e2e ./e2e/
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
go test -race -count=1 ./...

# Fuzzers run briefly, to prove they still run; seed corpora are committed.
fuzz() { go test -run '^$' -fuzz "^$1\$" -fuzztime "${FUZZTIME:-10s}" -fuzzminimizetime 5s "$2"; }
fuzz FuzzTraceWindow ./otelfr
fuzz FuzzConfigFromEnv ./otelfr
fuzz FuzzValidID ./exporter
fuzz FuzzHandler ./exporter
fuzz FuzzViewer ./exporter/viewer
fuzz FuzzAnalyze ./analysis

# The benchmarks, briefly: they still build and run (numbers: BENCHMARKS.md).
scripts/bench.sh --quick

scripts/e2e.sh
