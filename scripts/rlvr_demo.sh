#!/usr/bin/env bash
# `make rlvr-demo`: GRPO and LENS end to end on built-in data, ~15 minutes on 2 CPU cores.
# 1. data: arithmetic (clean, and noisy with distractors for LENS), code tasks with hidden tests
# 2. a 600-id tokenizer and a random 4-layer width-128 model; 3. SFT it into a weak base
# (configs/sft_rlvr_base.yaml)
# 4. GRPO on code (configs/grpo_code.yaml): rewards from the bubblewrap sandbox
# 5. LENS on noisy arithmetic (configs/lens_arith_noisy.yaml) and its GRPO baseline
#    (configs/grpo_arith.yaml on the same noisy data)
# 6. a summary of metrics.jsonl: rewards, zero-reward prompts, purification and transfers.
# Exits non-zero unless the sandbox gave some non-zero reward and LENS purified prompts and
# transferred rollouts. Outputs in demo_out/rlvr/.
set -euo pipefail
gopd=${1:-build/bin/gopd}
out=demo_out/rlvr
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
start=$SECONDS
step() { echo; echo "== [$1/6] $2   (t = $((SECONDS - start)) s)"; }

rm -rf "$out"
mkdir -p "$out"
step 1 "datasets (gopd data)"
"$gopd" data --task arith --n 3000 --difficulty 2 --seed 1 --out "$out/arith_train.jsonl"
"$gopd" data --task arith --n 3000 --difficulty 2 --seed 1 --noise 0.2 --out "$out/arith_train_noisy.jsonl"
"$gopd" data --task arith --n 200 --difficulty 2 --seed 2 --split eval --out "$out/arith_eval.jsonl"
"$gopd" data --task code --n 2000 --difficulty 1 --seed 3 --out "$out/code_train.jsonl"
"$gopd" data --task code --n 100 --difficulty 1 --seed 4 --split eval --out "$out/code_eval.jsonl"
cat "$out/arith_train.jsonl" "$out/code_train.jsonl" > "$out/sft_mix.jsonl"
echo "-- one noisy record:"
head -n 1 "$out/arith_train_noisy.jsonl"

step 2 "tokenizer and model (gopd tokenizer train / init-model)"
"$gopd" tokenizer train --input "$out/sft_mix.jsonl" --vocab-size 600 --chat-format chatml --out "$out/tokenizer"
"$gopd" init-model --arch qwen3 --hidden 128 --layers 4 --heads 4 --kv-heads 2 \
  --tokenizer "$out/tokenizer" --out "$out/models/init" --seed 0

step 3 "SFT base (configs/sft_rlvr_base.yaml)"
base=$("$gopd" train configs/sft_rlvr_base.yaml | tail -n 1)
cp -r "$base" "$out/base"

step 4 "GRPO on code, rewards from the sandbox (configs/grpo_code.yaml)"
"$gopd" train configs/grpo_code.yaml > /dev/null

step 5 "LENS on noisy arithmetic and its GRPO baseline"
"$gopd" train configs/lens_arith_noisy.yaml > /dev/null
"$gopd" train configs/grpo_arith.yaml --set run.name=grpo-arith-noisy \
  --set data.train_file="$out/arith_train_noisy.jsonl" > /dev/null

step 6 "summary of metrics.jsonl"
python3 - "$out/runs" <<'PY'
import json, sys
runs = sys.argv[1]
def lines(name):
    with open(f"{runs}/{name}/metrics.jsonl") as f:
        rows = [json.loads(l) for l in f]
    return [r for r in rows if "reward/mean" in r], [r for r in rows if "eval/accuracy" in r]
def mean(rows, key):
    vals = [r[key] for r in rows if key in r]
    return sum(vals) / len(vals) if vals else float("nan")
ok = True
print(f"{'run':<18} {'steps':>5} {'reward':>7} {'acc':>6} {'zero-rwd':>8} {'purified':>8} {'removed':>7} "
      f"{'before':>6} {'after':>6} {'transf':>6} {'eval':>6}")
for name in ["grpo-code", "grpo-arith-noisy", "lens-arith-noisy"]:
    steps, evals = lines(name)
    transferred = sum(r.get("lens/transferred", 0) for r in steps)
    print(f"{name:<18} {len(steps):>5} {mean(steps, 'reward/mean'):>7.4f} {mean(steps, 'reward/accuracy'):>6.3f} "
          f"{mean(steps, 'grpo/zero_reward_prompt_fraction'):>8.3f} {mean(steps, 'lens/purified_fraction'):>8.3f} "
          f"{mean(steps, 'lens/tokens_removed'):>7.2f} {mean(steps, 'lens/success_before'):>6.3f} "
          f"{mean(steps, 'lens/success_after'):>6.3f} {transferred:>6} "
          f"{evals[0]['eval/accuracy'] if evals else float('nan'):>6.3f}  (eval: step 0)")
    print(f"{'':<18} {'':>5} {'':>7} {'':>6} {'':>8} {'':>8} {'':>7} {'':>6} {'':>6} {'':>6} "
          f"{evals[-1]['eval/accuracy'] if evals else float('nan'):>6.3f}  (eval: final)")
    if name == "grpo-code":
        best = max(r["reward/mean"] for r in steps)
        print(f"{'':<18} sandbox rewards: max reward/mean {best:.4f} over {len(steps)} steps")
        ok = ok and best > 0
    if name == "lens-arith-noisy":
        purified_steps = sum(1 for r in steps if r.get("lens/purified_fraction", 0) > 0)
        print(f"{'':<18} purification fired on {purified_steps} of {len(steps)} steps; "
              f"{transferred} rollouts transferred")
        ok = ok and purified_steps > 0 and transferred > 0
print("RESULT:", "ok" if ok else "FAILED: no sandbox reward or no purification/transfer")
sys.exit(0 if ok else 1)
PY
echo "total: $((SECONDS - start)) s"
