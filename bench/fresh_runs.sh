#!/usr/bin/env bash
# `make run`'s command, N times, each in an empty data directory (no model assembled, no
# evidence or response cached): what a new user's first run costs, install excluded.
# Usage: bench/fresh_runs.sh N OUT_DIR [helios run options...]
# Writes OUT_DIR/run<i>.json (helios run --json) and OUT_DIR/summary.txt (wall seconds).
set -euo pipefail
n=$1 out=$2
shift 2
mkdir -p "$out"
cd "$(dirname "$0")/.."
for i in $(seq 1 "$n"); do
    data=$(mktemp -d)
    started=$(date +%s.%N)
    HELIOS_DATA_DIR=$data .venv/bin/helios run "Should a five-person startup adopt microservices?" \
        --docs examples/startup --json "$@" >"$out/run$i.json" 2>"$out/run$i.err"
    echo "run $i wall_s=$(echo "$(date +%s.%N) - $started" | bc)" | tee -a "$out/summary.txt"
    rm -rf "$data"
done
