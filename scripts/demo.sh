#!/usr/bin/env bash
# `make demo`: what gopd can do today, on built-in data, in a few seconds.
# 1. generate train and held-out eval sets of the arithmetic task (+ a noisy copy for LENS),
# 2. check every shipped job config against them,
# 3. score model-style responses with the math verifier and the exact task checker,
# 4. train a tokenizer on the data, build a tiny Qwen3-style model directory (Hugging Face
#    layout), score text with it, sample from it and evaluate it (a random model: ~0%),
# 5. print a short summary.
# Later issues replace steps 4-5 with the real main job (ExOPD distillation).
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
echo "== 4. tokenizer, model, sampling (gopd tokenizer train / init-model / logprobs / generate / eval)"
"$gopd" tokenizer train --input "$out/arith_train.jsonl" --vocab-size 512 --chat-format chatml \
  --out "$out/tokenizer"
"$gopd" init-model --arch qwen3 --hidden 128 --layers 4 --heads 4 --kv-heads 2 \
  --tokenizer "$out/tokenizer" --out "$out/tiny-qwen3" --seed 0
echo "-- model directory:"
ls "$out/tiny-qwen3"
echo '{"text": "Begin with 18. Multiply by 2."}' > "$out/logprobs_input.jsonl"
"$gopd" logprobs --model "$out/tiny-qwen3" --input "$out/logprobs_input.jsonl" \
  --output "$out/logprobs.jsonl"
echo "-- per-token log-probs of a sentence (first 60 characters):"
cut -c1-60 "$out/logprobs.jsonl"
head -n 20 "$out/arith_eval.jsonl" > "$out/eval_small.jsonl"
"$gopd" eval --model "$out/tiny-qwen3" --data "$out/eval_small.jsonl" --samples 2 \
  --temperature 1.0 --max-new-tokens 32 --chat --out "$out/eval" > /dev/null
echo "-- eval summary of the untrained model:"
cat "$out/eval/summary.json"

echo
echo "== summary"
total=$(wc -l < "$out/arith_scored.jsonl")
correct=$(grep -c '"reward":1.0' "$out/arith_scored.jsonl" || true)
echo "  datasets:  $(wc -l < "$out/arith_train.jsonl") train / $(wc -l < "$out/arith_eval.jsonl") eval arithmetic problems (disjoint splits), $(wc -l < "$out/code_train.jsonl") code problems"
echo "  configs:   $(ls configs/*.yaml configs/paper/*.yaml | wc -l) job configs valid"
echo "  math:      $(grep -c '"reward":1.0' "$out/math_scored.jsonl" || true)/$(wc -l < "$out/math_scored.jsonl") example responses judged correct (3 are wrong on purpose)"
echo "  task:      $correct/$total reference solutions of the eval set pass the exact checker"
echo "  model:     $(ls "$out/tiny-qwen3" | tr '\n' ' ')"
echo "  eval:      avg@2 $(sed -nE 's/.*"avg@2": ([0-9.e-]+).*/\1/p' "$out/eval/summary.json") for the untrained model (training arrives with the trainer issues)"
echo "  outputs in $out/"
