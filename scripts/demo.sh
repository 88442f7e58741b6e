#!/usr/bin/env bash
# `make demo`: what gopd can do today, on built-in data, in a few seconds.
# 1. generate train and held-out eval sets of the arithmetic task (+ a noisy copy for LENS),
# 2. check every shipped job config against them,
# 3. score model-style responses with the math verifier and the exact task checker,
# 4. print a short summary.
# Later issues replace steps 3-4 with the real main job (ExOPD distillation).
set -euo pipefail
gopd=${1:-build/bin/gopd}
out=demo_out
mkdir -p "$out"

echo "== 1. datasets (gopd data)"
"$gopd" data --task arith --n 2000 --difficulty 2 --seed 1 --split train --out "$out/arith_train.jsonl"
"$gopd" data --task arith --n 300 --difficulty 2 --seed 2 --split eval --out "$out/arith_eval.jsonl"
"$gopd" data --task arith --n 2000 --difficulty 2 --seed 1 --split train --noise 0.1 \
  --out "$out/arith_train_noisy.jsonl"
"$gopd" data --task code --n 200 --difficulty 1 --seed 1 --out "$out/code_train.jsonl"
echo "-- one arithmetic record:"
head -n 1 "$out/arith_train.jsonl"
echo "-- its noisy twin (distractors inserted, clean_prompt kept):"
head -n 1 "$out/arith_train_noisy.jsonl"

echo
echo "== 2. job configs (gopd config check)"
for config in configs/*.yaml configs/paper/*.yaml; do
  "$gopd" config check "$config"
done
echo "-- resolved quickstart config, gopd section (gopd config show):"
"$gopd" config show configs/quickstart.yaml | sed -n '/^gopd:/,/^grpo:/p' | sed '$d'

echo
echo "== 3. verifiers (gopd reward)"
"$gopd" reward --type math --input examples/math_responses.jsonl --output "$out/math_scored.jsonl"
while IFS= read -r line; do
  id=$(sed -E 's/.*"id":"([^"]*)".*/\1/' <<<"$line")
  reward=$(sed -E 's/.*"reward":([0-9.]+).*/\1/' <<<"$line")
  detail=$(sed -E 's/.*"detail":"(([^"\\]|\\.)*)".*/\1/; s/\\\\/\\/g' <<<"$line")
  printf '  %-12s reward %-4s extracted: %s\n' "$id" "$reward" "$detail"
done < "$out/math_scored.jsonl"

# The exact task checker on the held-out set's own reference solutions: all must pass.
"$gopd" reward --type task --input "$out/arith_eval.jsonl" --response-field solution \
  --output "$out/arith_scored.jsonl"

echo
echo "== summary"
total=$(wc -l < "$out/arith_scored.jsonl")
correct=$(grep -c '"reward":1.0' "$out/arith_scored.jsonl" || true)
echo "  datasets:  $(wc -l < "$out/arith_train.jsonl") train / $(wc -l < "$out/arith_eval.jsonl") eval arithmetic problems (disjoint splits), $(wc -l < "$out/code_train.jsonl") code problems"
echo "  configs:   $(ls configs/*.yaml configs/paper/*.yaml | wc -l) job configs valid"
echo "  math:      $(grep -c '"reward":1.0' "$out/math_scored.jsonl" || true)/$(wc -l < "$out/math_scored.jsonl") example responses judged correct (3 are wrong on purpose)"
echo "  task:      $correct/$total reference solutions of the eval set pass the exact checker"
echo "  outputs in $out/"
