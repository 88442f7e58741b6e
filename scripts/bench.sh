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
# Fused kernels vs their LibTorch reference (needs several GB of memory; rows shrink to fit).
if [[ -x "$gopd" ]]; then
  found=1
  # Rollout tokens/s with the KV cache vs recompute, peak RSS, and the fraction of the matmul
  # rate measured in the same run.
  "$gopd" bench rollout
  "$gopd" bench kernels
  # Training steps by phase on a tiny model (reference pass on/off) and the full-vocab
  # objective's memory, fused vs reference.
  "$gopd" bench train
fi
if [[ $found -eq 0 ]]; then
  echo "bench: no benchmark programs are built yet (rollout and kernel benchmarks arrive with their issues)" >&2
fi
