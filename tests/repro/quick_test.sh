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
            "exopd_lambda_strong": ["curves.png", "lambda_sweep.png"],
            "strong_to_weak": ["curves.png"], "lens_vs_grpo": ["curves.png", "zero_reward.png"]}
for exp, plots in expected.items():
    d = os.path.join(results, exp)
    for name in ["README.md", "results.json"] + plots:
        path = os.path.join(d, name)
        assert os.path.getsize(path) > 200, f"{path} missing or nearly empty"
    page = open(os.path.join(d, "README.md")).read()
    assert "--quick run" in page and "## The paper" in page and "| row |" in page, f"{exp}: page incomplete"
    for plot in plots:  # the page links a plot only when some arm's series was drawn
        assert f"]({plot})" in page, f"{exp}: {plot} drew nothing"
    data = json.load(open(os.path.join(d, "results.json")))
    tables = data["table"]
    blocks = list(tables.values()) if exp == "multi_teacher" else [tables]
    arms = 0
    for block in blocks:
        for label, arm in block["arms"].items():
            arms += 1
            assert arm["seeds"] == [0, 1], f"{exp}/{label}: seeds {arm['seeds']}"
            for metric in ("avg@2", "greedy"):
                s = arm[metric]
                assert len(s["per_seed"]) == 2 and all(0 <= x <= 1 for x in s["per_seed"]), (exp, label, s)
                assert s["ci95"][0] <= s["mean"] + 1e-12 <= s["ci95"][1] + 2e-12, (exp, label, s)
        for label, ref in block["refs"].items():
            assert 0 <= ref["greedy"]["mean"] <= 1 and 0 <= ref["avg@2"]["mean"] <= 1, (exp, label, ref)
        for c in block["comparisons"]:
            assert c["ci95"][0] <= c["diff"] + 1e-12 and c["diff"] <= c["ci95"][1] + 1e-12, (exp, c)
    want = {"exopd_lambda": 4, "exopd_lambda_strong": 4, "multi_teacher": 4, "strong_to_weak": 3, "lens_vs_grpo": 2}[exp]
    assert arms == want, f"{exp}: {arms} arms, expected {want}"
    pairs = {"exopd_lambda": 6, "exopd_lambda_strong": 6, "multi_teacher": 10, "strong_to_weak": 5, "lens_vs_grpo": 3}[exp]
    assert sum(len(b["comparisons"]) for b in blocks) == 2 * pairs, f"{exp}: comparisons missing"
    refs = {"exopd_lambda": 2, "exopd_lambda_strong": 2, "multi_teacher": 6, "strong_to_weak": 3, "lens_vs_grpo": 1}[exp]
    assert sum(len(b["refs"]) for b in blocks) == refs, f"{exp}: reference rows missing"
    if exp == "lens_vs_grpo":
        for label in ("GRPO", "LENS"):
            d = data["dynamics"][label]
            assert d["curve_steps"] and "grpo/zero_reward_prompt_fraction_mean" in d, (label, d)
        assert "lens/zero_reward_prompt_fraction_mean" in data["dynamics"]["LENS"]
    assert data["wall"]["total_s"] > 0, f"{exp}: no wall time"
print("results pages: ok")
PY

cp -r "$work/results" "$work/results.first"
bash "$all" --quick --out "$work/out" --results "$work/results" 2> "$work/second.log" || {
  tail -n 40 "$work/second.log"; echo "FAIL: the second all.sh --quick failed"; exit 1; }
if grep -E '^\[repro .*\] (train |  eval |common:)' "$work/second.log"; then
  echo "FAIL: the second run redid the runs or evaluations above"; exit 1
fi
for exp in exopd_lambda multi_teacher strong_to_weak exopd_lambda_strong lens_vs_grpo; do
  cmp "$work/results/$exp/results.json" "$work/results.first/$exp/results.json" || {
    echo "FAIL: $exp/results.json changed on the resumed run"; exit 1; }
done
echo "resume: nothing redone, same numbers"

# A lost evaluation is redone; a run stopped after its last checkpoint but before its FINAL
# marker is taken as finished; a run stopped before any checkpoint starts again with its logs
# emptied (a run stopped between checkpoints continues from the newest: gopd's --resume auto,
# tested bit-identical in tests/e2e); the numbers stay the same.
rm -r "$work/out/eval/exopd_lambda-l1.25-s1-t1"
rm "$work/out/runs/strong_to_weak-opd-s1/FINAL"
rm -r "$work/out/runs/lens_vs_grpo-lens-s0/FINAL" "$work/out/runs/lens_vs_grpo-lens-s0/checkpoints"
bash "$all" --quick --out "$work/out" --results "$work/results" 2> "$work/third.log" || {
  tail -n 40 "$work/third.log"; echo "FAIL: the third all.sh --quick failed"; exit 1; }
redone=$(grep -E '^\[repro .*\] (train |  eval |common:)' "$work/third.log" | sed -E 's/^\[repro [0-9:]+\] +//; s/ \(.*//; s/:.*//')
expected=$'eval exopd_lambda-l1.25-s1\ntrain lens_vs_grpo-lens-s0'
[[ $redone == "$expected" ]] || { echo "FAIL: redone on the third run:"; echo "$redone"; exit 1; }
for exp in exopd_lambda strong_to_weak lens_vs_grpo; do  # wall times aside: the redone work took its own time
  "$python" - "$work/results/$exp/results.json" "$work/results.first/$exp/results.json" <<'PY' || {
import json, sys
a, b = (json.load(open(path)) for path in sys.argv[1:])
for data in (a, b):
    data.pop("wall")
sys.exit(0 if a == b else 1)
PY
    echo "FAIL: $exp/results.json changed after redoing one evaluation / resuming one run"; exit 1; }
done
[[ -f $work/out/runs/strong_to_weak-opd-s1/FINAL ]] || { echo "FAIL: no FINAL for the finished run"; exit 1; }
echo "resume: only the lost evaluation and the run without checkpoints redone, same numbers"

# One scale per output directory
status=0
bash "$source/scripts/repro/exopd_lambda.sh" --out "$work/out" > /dev/null 2>&1 || status=$?
[[ $status == 2 ]] || { echo "FAIL: a full run into a --quick directory exited $status, not 2"; exit 1; }

status=0
bash "$source/scripts/repro/exopd_lambda.sh" --bogus > /dev/null 2>&1 || status=$?
[[ $status == 2 ]] || { echo "FAIL: a bad argument exited $status, not 2"; exit 1; }
echo "PASS"
