#!/usr/bin/env bash
# `make golden-cpus`: checks that the golden runs (tests/golden/, GoldenRuns.*) give the same
# bits on other x86-64 processors than this one. It runs GoldenRuns.* natively, then with every
# gopd process under qemu-user emulating each CPU model (GOPD_GOLDEN_CPU), Intel and AMD:
# MKL picks its code paths by the processor's vendor and features (CPUID), which qemu
# presents as the model's. Each emulated model takes about 5 minutes on one core.
#
#   scripts/golden_cpus.sh [qemu-cpu-model...]   (default: Haswell-v4 Skylake-Server EPYC)
#
# Prints one JSON line per processor: tests passed out of run, and seconds. Exits 1 if any
# golden run differs on any of them. Needs qemu-x86_64 (scripts/setup.sh --qemu) and a build
# (build/gopd_e2e_tests; BUILD_DIR overrides).
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
tests="$build/gopd_e2e_tests"
if [[ ! -x $tests ]]; then
  echo "golden_cpus: $tests not found; build first (make build)" >&2
  exit 2
fi
if ! command -v qemu-x86_64 >/dev/null 2>&1; then
  echo "golden_cpus: qemu-x86_64 not found; install it with: bash scripts/setup.sh --qemu" >&2
  exit 2
fi
models=("$@")
[[ ${#models[@]} -gt 0 ]] || models=(Haswell-v4 Skylake-Server EPYC)
known=$(qemu-x86_64 -cpu help || true)  # qemu lists its CPU models, then exits with 1
# qemu's description of a CPU model ("" if it has none), that of its first version for an alias.
describe() {
  local text
  text=$(awk -v m="$1" '$2 == m {$1 = $2 = ""; sub(/^ +/, ""); print}' <<< "$known")
  [[ $text != "(alias"* ]] || text=$(describe "$1-v1")
  echo "$text"
}
for model in "${models[@]}"; do
  if [[ -z $(describe "$model") ]]; then
    echo "golden_cpus: qemu-x86_64 knows no CPU model '$model' (qemu-x86_64 -cpu help)" >&2
    exit 2
  fi
done

failed=0
for model in native "${models[@]}"; do
  log=$(mktemp)
  start=$(date +%s)
  status=0
  # An empty GOPD_GOLDEN_CPU runs gopd natively.
  GOPD_GOLDEN_CPU=${model/#native/} "$tests" --gtest_filter='GoldenRuns.*' > "$log" 2>&1 || status=$?
  seconds=$(( $(date +%s) - start ))
  passed=$(grep -c '^\[       OK \]' "$log" || true)
  ran=$(grep -c '^\[ RUN      \]' "$log" || true)
  if [[ $model == native ]]; then
    description=$(grep -m1 -o 'GenuineIntel\|AuthenticAMD' /proc/cpuinfo || echo unknown)
  else
    description=$(describe "$model")
  fi
  printf '{"bench": "golden_cpus", "cpu": "%s", "description": "%s", "passed": %d, "ran": %d, "seconds": %d}\n' \
    "$model" "${description//\"/}" "$passed" "$ran" "$seconds"
  if [[ $status -ne 0 || $passed -ne $ran || $ran -eq 0 ]]; then
    failed=1
    grep -E '^\[  FAILED  \]|differ' "$log" | sort -u | head -20 >&2
  fi
  rm -f "$log"
done
exit $failed
