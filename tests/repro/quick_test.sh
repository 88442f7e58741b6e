#!/usr/bin/env bash
# ctest Repro.Quick: scripts/repro/all.sh --quick end to end (every experiment: data, bases,
# RL'd teachers, distillation / LENS arms over 2 seeds, evaluations, results pages), then
#   - every results page, plot and results.json exists and holds accuracies in [0, 1] for
#     every arm and seed,
#   - a second run redoes nothing (no training or evaluation) and writes the same numbers,
#   - a bad argument exits 2.
#   quick_test.sh PYTHON GOPD SOURCE_DIR
set -euo pipefail
python=$1 gopd=$2 source=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOPD=$gopd GOPD_PYTHON=$python
all=$source/scripts/repro/all.sh

bash "$all" --quick --out "$work/out" --results "$work/results" 2> "$work/first.log" || {
  tail -n 40 "$work/first.log"; echo "FAIL: all.sh --quick failed"; exit 1; }
grep -c '^\[repro .*\] train ' "$work/first.log" | sed 's/^/training runs in the first pass: /'

"$python" - "$work/results" <<'PY'
import json, os, sys
results = sys.argv[1]
expected = {"exopd_lambda": ["curves.png", "lambda_sweep.png"], "multi_teacher": ["curves.png"],
            "strong_to_weak": ["curves.png"], "lens_vs_grpo": ["curves.png", "zero_reward.png"]}
for exp, plots in expected.items():
    d = os.path.join(results, exp)
    for name in ["README.md", "results.json"] + plots:
        path = os.path.join(d, name)
        assert os.path.getsize(path) > 200, f"{path} missing or nearly empty"
    page = open(os.path.join(d, "README.md")).read()
    assert "--quick run" in page and "## The paper" in page and "| row |" in page, f"{exp}: page incomplete"
    data = json.load(open(os.path.join(d, "results.json")))
    tables = data["table"] if exp != "multi_teacher" else data["table"]
    blocks = tables.values() if exp == "multi_teacher" else [tables]
    arms = 0
    for block in blocks:
        for label, arm in block["arms"].items():
            arms += 1
            assert arm["seeds"] == [0, 1], f"{exp}/{label}: seeds {arm['seeds']}"
            for metric in ("avg@2", "greedy"):
                s = arm[metric]
                assert len(s["per_seed"]) == 2 and all(0 <= x <= 1 for x in s["per_seed"]), (exp, label, s)
                assert s["ci95"][0] <= s["mean"] + 1e-12 <= s["ci95"][1] + 2e-12, (exp, label, s)
        assert block["comparisons"], f"{exp}: no comparisons"
    want = {"exopd_lambda": 4, "multi_teacher": 4, "strong_to_weak": 3, "lens_vs_grpo": 2}[exp]
    assert arms == want, f"{exp}: {arms} arms, expected {want}"
    assert data["wall"]["total_s"] > 0, f"{exp}: no wall time"
print("results pages: ok")
PY

cp -r "$work/results" "$work/results.first"
bash "$all" --quick --out "$work/out" --results "$work/results" 2> "$work/second.log" || {
  tail -n 40 "$work/second.log"; echo "FAIL: the second all.sh --quick failed"; exit 1; }
if grep -E '^\[repro .*\] (train |  eval )' "$work/second.log"; then
  echo "FAIL: the second run redid the runs or evaluations above"; exit 1
fi
for exp in exopd_lambda multi_teacher strong_to_weak lens_vs_grpo; do
  cmp "$work/results/$exp/results.json" "$work/results.first/$exp/results.json" || {
    echo "FAIL: $exp/results.json changed on the resumed run"; exit 1; }
done
echo "resume: nothing redone, same numbers"

status=0
bash "$source/scripts/repro/exopd_lambda.sh" --bogus > /dev/null 2>&1 || status=$?
[[ $status == 2 ]] || { echo "FAIL: a bad argument exited $status, not 2"; exit 1; }
echo "PASS"
