#!/usr/bin/env bash
# `make bench`: runs every benchmark program of the build (one JSON line per result).
set -euo pipefail
gopd=${1:-build/bin/gopd}
bench_dir=$(dirname "$gopd")/../bench
found=0
if [[ -d "$bench_dir" ]]; then
  for program in "$bench_dir"/*; do
    [[ -x "$program" && -f "$program" ]] || continue
    found=1
    "$program"
  done
fi
if [[ $found -eq 0 ]]; then
  echo "bench: no benchmark programs are built yet (rollout and kernel benchmarks arrive with their issues)" >&2
fi
