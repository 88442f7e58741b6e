#!/usr/bin/env bash
# Every experiment of scripts/repro/, in order, with the same arguments (--quick, --out,
# --results, --seeds, --threads; see lib.sh). Resumable: finished runs are not redone.
# Full scale on 2 CPU cores: ~4.5 h from nothing (the shared base 4 min, then 50-60 min per
# experiment; exopd_lambda_strong reuses strong_to_weak's larger base and teacher, ~55 min
# more); rerunning after it finished only redraws the results pages (~1 min).
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
start=$SECONDS
for exp in exopd_lambda multi_teacher strong_to_weak exopd_lambda_strong lens_vs_grpo; do
  echo "== $exp (t = $((SECONDS - start)) s)" >&2
  bash "$here/$exp.sh" "$@"
done
echo "== all done in $((SECONDS - start)) s" >&2
