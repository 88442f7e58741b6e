#!/usr/bin/env bash
# gopd against what its users would run instead, on the same model directories, data and
# thread count, in one run. One JSON line per comparison on stdout (ratio > 1 = gopd better):
#   peer_rollout   gopd's rollout engine vs transformers' generate (sampling at temperature 1,
#                  KV cache, 32-token prompts, 256 new tokens) at batch 1 / 8 / 64
#   peer_distill   gopd `opd` with the full-vocabulary objective vs TRL's DistillationTrainer
#                  (on-policy, reverse KL, same prompts per step, response length, AdamW and lr),
#                  plus gopd's sampled-token ExOPD step (λ = 1.25, reference = the student's
#                  initial weights) against the same TRL run
#   peer_grpo      gopd `grpo` vs TRL's GRPOTrainer (same group size, lengths, reward rule: TRL's
#                  reward function calls `gopd reward --type math`)
# The inputs are built here: arith data, a 384-piece tokenizer, a random Qwen3-style student
# (hidden 256, 4 layers) and a teacher made from another random init by a short SFT, so that the
# reverse KL starts high and both trainers must lower it.
#
# Usage: scripts/bench/peers.sh [--threads K] [--steps N] [--quick] [--keep DIR]
#   --quick: batch 1 and 8 only, 3 measured steps (a smoke run, not the benchmark)
# Peers (TRL and its dependencies, scripts/bench/requirements-peers.txt) are installed into
# .venv/ on first use, constrained by scripts/requirements.txt. ~3 min on 2 cores (2.5 measured).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
gopd=${GOPD:-$root/build/bin/gopd}
python=$root/.venv/bin/python
threads=2
steps=10
quick=0
keep=
while [[ $# -gt 0 ]]; do
  case $1 in
    --threads) threads=${2:?--threads needs a value}; shift 2 ;;
    --steps) steps=${2:?--steps needs a value}; shift 2 ;;
    --quick) quick=1; shift ;;
    --keep) keep=${2:?--keep needs a directory}; shift 2 ;;
    *) echo "peers.sh: unknown argument '$1' (expected --threads K, --steps N, --quick, --keep DIR)" >&2; exit 2 ;;
  esac
done
[[ $threads =~ ^[1-9][0-9]*$ ]] || { echo "peers.sh: --threads must be a positive integer, got '$threads'" >&2; exit 2; }
[[ $steps =~ ^[1-9][0-9]*$ ]] || { echo "peers.sh: --steps must be a positive integer, got '$steps'" >&2; exit 2; }
[[ -x $gopd ]] || { echo "peers.sh: $gopd is not built (make build)" >&2; exit 2; }
[[ -x $python ]] || { echo "peers.sh: no project venv at $root/.venv (make setup)" >&2; exit 2; }
batches="1 8 64"
if [[ $quick -eq 1 ]]; then
  batches="1 8"
  steps=3
fi
log() { echo "[peers $(date +%H:%M:%S)] $*" >&2; }

if ! "$python" -c "import trl" 2> /dev/null; then
  log "installing the peers (scripts/bench/requirements-peers.txt)"
  "$python" -m pip install -q -r "$root/scripts/bench/requirements-peers.txt" \
    -c "$root/scripts/requirements.txt" >&2
fi

if [[ -n $keep ]]; then
  work=$keep
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi

# --- inputs --------------------------------------------------------------------------------
prompts=16        # distillation: prompts per step, one sample each
grpo_prompts=8    # GRPO: prompts per step ...
group=4           # ... and samples per prompt
response=64       # max new tokens (random students never stop early)
lr=1e-4
needed=$(( (steps + 1) * prompts ))
if [[ ! -f $work/INPUTS_DONE ]]; then
  log "building the inputs in $work"
  "$gopd" data --task arith --n 4000 --difficulty 2 --seed 1 --out "$work/train.jsonl" > /dev/null
  "$gopd" tokenizer train --input "$work/train.jsonl" --vocab-size 384 --chat-format none \
    --out "$work/tokenizer" > /dev/null
  "$gopd" init-model --arch qwen3 --hidden 256 --layers 4 --tokenizer "$work/tokenizer" \
    --out "$work/student" --seed 1 > /dev/null
  "$gopd" init-model --arch qwen3 --hidden 256 --layers 4 --tokenizer "$work/tokenizer" \
    --out "$work/teacher-init" --seed 2 > /dev/null
  cat > "$work/teacher_sft.yaml" << EOF
algorithm: sft
run: {name: teacher-sft, output_dir: $work/runs, seed: 0, threads: $threads}
student: {path: $work/teacher-init, chat_format: none}
data: {train_file: $work/train.jsonl}
rollout: {batch_prompts: 32}
optim: {lr: 2.0e-3, micro_batch_size: 32}
train: {epochs: 1, max_steps: 60}
EOF
  "$gopd" train "$work/teacher_sft.yaml" > "$work/teacher_sft.log" 2>&1
  ln -sfn "$work/runs/teacher-sft/checkpoints/step_60" "$work/teacher"
  touch "$work/INPUTS_DONE"
fi
[[ -f $work/teacher/config.json ]] || { echo "peers.sh: the teacher's SFT left no checkpoint; see $work/teacher_sft.log" >&2; exit 1; }

# --- rollout ----------------------------------------------------------------------------------
log "rollout: gopd bench rollout vs transformers generate, batch ${batches// / / }"
"$gopd" bench rollout --model "$work/student" --batch "${batches// /,}" --prompt-tokens 32 \
  --new-tokens 256 --threads "$threads" --baseline-max-batch 0 > "$work/gopd_rollout.jsonl"
: > "$work/hf_rollout.jsonl"
for batch in $batches; do
  "$python" "$root/scripts/hf_generate_bench.py" --model "$work/student" --device cpu \
    --dtype float32 --sequences "$batch" --prompt-tokens 32 --max-new-tokens 256 --repeats 1 \
    --threads "$threads" >> "$work/hf_rollout.jsonl"
done
cat "$work/gopd_rollout.jsonl" | grep '"bench":"matmul"'
"$python" "$root/scripts/bench/peers_compare.py" rollout "$work/gopd_rollout.jsonl" "$work/hf_rollout.jsonl"

# --- on-policy distillation and GRPO -----------------------------------------------------------
# gopd_run NAME ALGORITHM PROMPTS N [YAML lines]: steps + 1 steps (the first is the warm-up), one
# micro-batch per step like TRL's at gradient_accumulation_steps 1
gopd_run() {
  local name=$1 algorithm=$2 batch_prompts=$3 n=$4 extra=${5:-}
  rm -rf "$work/runs/$name"
  cat > "$work/$name.yaml" << EOF
algorithm: $algorithm
run: {name: $name, output_dir: $work/runs, seed: 0, threads: $threads}
student: {path: $work/student, chat_format: none}
data: {train_file: $work/train.jsonl, shuffle: false}
rollout: {batch_prompts: $batch_prompts, n: $n, temperature: 1.0, max_new_tokens: $response}
optim: {lr: $lr, schedule: constant, warmup_steps: 0, weight_decay: 0.01, grad_clip: 1.0,
        micro_batch_size: $((batch_prompts * n))}
train: {epochs: 100, max_steps: $((steps + 1))}
$extra
EOF
  "$gopd" train "$work/$name.yaml" > "$work/$name.log" 2>&1 ||
    { echo "peers.sh: gopd train $name failed; see $work/$name.log" >&2; exit 1; }
}
teacher_yaml="teachers: {math: {path: $work/teacher, dtype: float32}}"

log "distillation: gopd opd (full vocab) and ExOPD (sampled token) vs TRL DistillationTrainer, $steps steps"
gopd_run opd-full-vocab opd "$prompts" 1 "$teacher_yaml
gopd: {objective: full_vocab}"
gopd_run exopd-sampled gopd "$prompts" 1 "$teacher_yaml
reference: {path: student_init, dtype: float32}
gopd: {objective: sampled_token, lambda: 1.25}"
"$python" "$root/scripts/bench/trl_peer.py" distill --student "$work/student" --teacher "$work/teacher" \
  --data "$work/train.jsonl" --prompts "$prompts" --max-new-tokens "$response" --lr "$lr" \
  --steps "$steps" --warmup 1 --threads "$threads" > "$work/trl_distill.json" 2> "$work/trl_distill.log" ||
  { echo "peers.sh: TRL's DistillationTrainer failed; see $work/trl_distill.log" >&2; exit 1; }
"$python" "$root/scripts/bench/peers_compare.py" train distill "$work/trl_distill.json" \
  "$work/runs/opd-full-vocab" "$work/runs/exopd-sampled"

log "GRPO: gopd grpo vs TRL GRPOTrainer, $grpo_prompts prompts x $group samples, $steps steps"
gopd_run grpo grpo "$grpo_prompts" "$group" "reward: {type: math}"
"$python" "$root/scripts/bench/trl_peer.py" grpo --student "$work/student" --data "$work/train.jsonl" \
  --prompts "$grpo_prompts" --group "$group" --max-new-tokens "$response" --lr "$lr" \
  --steps "$steps" --warmup 1 --threads "$threads" --gopd "$gopd" > "$work/trl_grpo.json" 2> "$work/trl_grpo.log" ||
  { echo "peers.sh: TRL's GRPOTrainer failed; see $work/trl_grpo.log" >&2; exit 1; }
"$python" "$root/scripts/bench/peers_compare.py" train grpo "$work/trl_grpo.json" "$work/runs/grpo"
log "done"
