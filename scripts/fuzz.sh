#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan) in
# build/fuzz/ and runs each one, one after the other, starting from its committed corpus
# tests/fuzz/corpus/<target>/ (seeds, inputs kept by --merge, regression-* inputs of crashes).
#
#   scripts/fuzz.sh [--seconds N | --runs N] [--merge] [target...]
#
#   --seconds N  how long each target runs (default: FUZZ_SECONDS or 60)
#   --runs N     run each target for N executions instead (the note's runs: --runs 1000000)
#   --merge      afterwards, add the inputs that found new coverage to the committed corpus
#                (libFuzzer -merge=1: only inputs that add coverage are kept)
#   target...    a subset, e.g. `scripts/fuzz.sh --seconds 10 tokenizer config`
#
# Prints one JSON line per target: executions, execs/s, coverage (cov = edges, ft = features),
# corpus size, peak RSS, and whether it crashed. A crash, leak or sanitizer report stops with
# exit 1 and names the input libFuzzer saved; once fixed, copy it to
# tests/fuzz/corpus/<target>/regression-<what> so that the corpus replay in `make test` keeps it
# fixed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
runs=""
merge=0
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds=$2; runs=""; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n 2,18p "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

positive='^[1-9][0-9]*$'
if [[ ! $seconds =~ $positive ]] || [[ -n $runs && ! $runs =~ $positive ]]; then
  echo "fuzz: --seconds and --runs take a positive integer" >&2
  exit 2
fi

# Everything but the JSON lines goes to stderr, so that stdout can be collected as results.
bash scripts/setup.sh --fuzz >&2

build=${FUZZ_BUILD_DIR:-build/fuzz}
CXX=clang++ cmake -S tests/fuzz -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" >&2

known=()
for source in tests/fuzz/*_fuzz.cpp; do
  name=$(basename "$source" _fuzz.cpp)
  known+=("$name")
done
if [[ ${#targets[@]} -eq 0 ]]; then targets=("${known[@]}"); fi
for target in "${targets[@]}"; do
  if [[ ! -f tests/fuzz/${target}_fuzz.cpp ]]; then
    echo "fuzz: unknown target '$target'; known: ${known[*]}" >&2
    exit 2
  fi
done

failed=0
for target in "${targets[@]}"; do
  work="$build/corpus/$target"
  artifacts="$build/artifacts/$target"
  log="$build/logs/$target.log"
  rm -rf "$artifacts"  # a stale crash file must not be reported for this run
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  seeds=(tests/fuzz/corpus/"$target")
  budget=(-max_total_time="$seconds")
  if [[ -n "$runs" ]]; then budget=(-runs="$runs"); fi
  echo "fuzz: $target ($([[ -n $runs ]] && echo "$runs runs" || echo "$seconds s")); log $log" >&2
  status=0
  "$build/${target}_fuzz" "$work" "${seeds[@]}" "${budget[@]}" -timeout=25 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" > "$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  corpus=$(find "$work" "${seeds[@]}" -type f | wc -l)
  crash=""
  if [[ $status -ne 0 ]]; then
    crash=$(ls -t "$artifacts" 2>/dev/null | head -1)
    failed=1
  fi
  printf '{"target":"%s","status":%d,"execs":%s,"execs_per_s":%s,"cov":%s,"ft":%s,"corpus_files":%d,"peak_rss_mb":%s,"artifact":"%s"}\n' \
    "$target" "$status" "${execs:-0}" "${rate:-0}" "${cov:-0}" "${ft:-0}" "$corpus" "${rss:-0}" \
    "${crash:+$artifacts/$crash}"
  if [[ $status -ne 0 ]]; then
    echo "fuzz: $target failed (exit $status); the report is in $log" >&2
    grep -m5 -E 'ERROR: |fuzz invariant|runtime error|SUMMARY' "$log" >&2 || true
    [[ -n "$crash" ]] && echo "fuzz: keep it fixed: cp $artifacts/$crash tests/fuzz/corpus/$target/regression-<what>" >&2
  elif [[ $merge -eq 1 ]]; then
    if ! "$build/${target}_fuzz" -merge=1 -artifact_prefix="$artifacts/" tests/fuzz/corpus/"$target" "$work" \
        > "$build/logs/$target.merge.log" 2>&1; then
      echo "fuzz: $target: merging into tests/fuzz/corpus/$target failed; see $build/logs/$target.merge.log" >&2
      failed=1
    fi
  fi
done
exit $failed
