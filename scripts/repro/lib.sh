# Shared by the scripts of scripts/repro/ (sourced, not run). Each experiment script:
#   source lib.sh; parse_args "$@"; prepare_common; ...train_run / eval_model...; analyze EXP
# Everything is resumable: a finished run (its FINAL file) or evaluation (its summary.json)
# is never redone, and an interrupted training run continues from its newest checkpoint
# (gopd train --resume auto). Run directories live under --out (default repro_out/, ignored
# by git); the results pages, plots and JSON go to --results (default results/).
set -euo pipefail
shopt -s inherit_errexit
unset CDPATH

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
gopd=${GOPD:-$repo/build/bin/gopd}
python=${GOPD_PYTHON:-$repo/.venv/bin/python}
configs=$repo/configs/repro
# Spinning OpenMP workers slow LibTorch down many times over on a shared 2-core machine.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

quick=0
out=""
results=""
seeds="0 1 2"
seeds_given=0
threads=2

usage() {
  cat <<EOF
usage: $(basename "$0") [--quick] [--out DIR] [--results DIR] [--seeds "0 1 2"] [--threads N]
  --quick      a few steps per run and tiny data: checks the pipeline, numbers mean nothing
               (default --out repro_out/quick, --results <out>/results)
  --out        run directories, datasets, models and evaluations (default repro_out)
  --results    results pages, plots and JSON (default results/, or <out>/results with --out)
  --seeds      seeds of every compared arm (data order, sampling); default "0 1 2"
  --threads    threads of every gopd process (default 2)
A finished run or evaluation is not redone: rerun the same command to resume.
EOF
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case $1 in
      --quick) quick=1 ;;
      --out|--results|--seeds|--threads)
        [[ $# -ge 2 && -n $2 ]] || { echo "$(basename "$0"): $1 needs a value" >&2; exit 2; }
        case $1 in
          --out) out=$2 ;;
          --results) results=$2 ;;
          --seeds) seeds=$2; seeds_given=1 ;;
          --threads) threads=$2 ;;
        esac
        shift ;;
      -h|--help) usage; exit 0 ;;
      *) echo "$(basename "$0"): unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
  done
  [[ $seeds =~ ^[0-9]+([[:space:]]+[0-9]+)*$ ]] || {
    echo "$(basename "$0"): --seeds '$seeds': expected numbers separated by spaces, e.g. \"0 1 2\"" >&2; exit 2; }
  [[ $threads =~ ^[1-9][0-9]*$ ]] || { echo "$(basename "$0"): --threads '$threads': expected a positive number" >&2; exit 2; }
  if (( quick )); then
    out=${out:-$repo/repro_out/quick}
    [[ -n $results ]] || results=$out/results
  elif [[ -n $out ]]; then
    [[ -n $results ]] || results=$out/results   # the committed pages only from the default run
  else
    out=$repo/repro_out
    results=${results:-$repo/results}
  fi
  mkdir -p "$out" "$results"
  out=$(cd "$out" && pwd)
  results=$(cd "$results" && pwd)
  [[ -x $gopd ]] || { echo "gopd binary not found at $gopd (make build, or GOPD=...)" >&2; exit 2; }
  [[ -x $python ]] || { echo "python not found at $python (make setup, or GOPD_PYTHON=...)" >&2; exit 2; }
  scale
  # One scale per output directory: a --quick run's 4-step checkpoints must never stand in for
  # a full run's (or the reverse).
  local want="quick=$quick eval_k=$eval_k eval_n=$eval_n train_n=$train_n"
  if [[ -f $out/SCALE && $(cat "$out/SCALE") != "$want" ]]; then
    echo "$(basename "$0"): $out holds runs of another scale ($(cat "$out/SCALE"); this is $want): use another --out" >&2
    exit 2
  fi
  echo "$want" > "$out/SCALE"
  # One script at a time per output directory: the experiments share the base and evaluations.
  exec 9> "$out/.lock"
  flock -n 9 || { echo "$(basename "$0"): another scripts/repro job is using $out" >&2; exit 2; }
}

# The scale of every experiment: full (the committed results) or --quick (the e2e test).
scale() {
  if (( quick )); then
    train_n=300; eval_n=24; curve_n=12; eval_k=2
    sft_steps=6; rl_steps=4; distill_steps=4; lens_steps=4; curve_every=2
    big_sft_steps=6
    base_size="64 2"; big_size="64 3"
    [[ $seeds_given == 1 ]] || seeds="0 1"
  else
    train_n=4000          # training problems (arith, difficulty 2)
    eval_n=1000           # held-out problems of every final evaluation
    curve_n=300           # held-out problems of the in-training greedy curve
    eval_k=4              # samples per problem of avg@k at temperature 1
    sft_steps=600         # SFT of the student base (batch 32): ~20% avg@4
    big_sft_steps=900     # SFT of the larger teacher base
    rl_steps=300          # GRPO of the RL'd teachers
    distill_steps=150     # every OPD/ExOPD arm
    lens_steps=150        # LENS and GRPO arms
    curve_every=25
    base_size="256 4"     # hidden width, layers of the student base (Qwen3-style, 4 heads)
    big_size="256 6"      # of the strong-to-weak teacher's base
  fi
  max_new_tokens=40       # worked solutions are ~30 tokens
}

log() { echo "[repro $(date +%T)] $*" >&2; }

# The commit a run was trained at, "+dirty" when the engine, configs or scripts had changes.
code_commit() {
  local head dirty
  head=$(git -C "$repo" rev-parse --short HEAD 2> /dev/null) || { echo unknown; return; }
  dirty=$(git -C "$repo" status --porcelain -- src include configs scripts CMakeLists.txt 2> /dev/null)
  echo "$head${dirty:++dirty}"
}

# train_run NAME CONFIG [--set k=v]...: prints the final checkpoint directory. Skips a run
# whose FINAL file names an existing checkpoint; otherwise trains, writes FINAL. A checkpoint
# is saved every curve_every steps, so an interrupted run continues from its newest one; a run
# without any starts again with its logs emptied.
train_run() {
  local name=$1 config=$2
  shift 2
  local dir=$out/runs/$name
  if [[ -f $dir/FINAL && -d $(cat "$dir/FINAL") ]]; then
    cat "$dir/FINAL"
    return
  fi
  rm -f "$dir/FINAL"
  local newest=-1 checkpoint
  for checkpoint in "$dir"/checkpoints/step_*; do
    [[ -d $checkpoint && ${checkpoint##*step_} =~ ^[0-9]+$ ]] || continue
    (( ${checkpoint##*step_} > newest )) && newest=${checkpoint##*step_}
  done
  if (( newest < 0 )); then
    rm -f "$dir/metrics.jsonl" "$dir/lens_dump.jsonl"
  elif [[ -f $dir/config.resolved.yaml ]] &&
       [[ $(sed -nE 's/^  max_steps: *([0-9]+).*/\1/p' "$dir/config.resolved.yaml" | head -n 1) == "$newest" ]]; then
    # the run finished but was stopped before its FINAL marker was written
    echo "$dir/checkpoints/step_$newest" > "$dir/FINAL.tmp"
    mv "$dir/FINAL.tmp" "$dir/FINAL"
    cat "$dir/FINAL"
    return
  fi
  log "train $name ($(basename "$config") $*)"
  mkdir -p "$out/runs"
  local t0=$SECONDS final
  final=$("$gopd" train "$config" --set run.output_dir="$out/runs" --set run.name="$name" \
    --set run.threads="$threads" --set run.log_every=25 --set train.save_every="$curve_every" --set train.keep_last=1 \
    "$@" --resume auto 2> "$out/runs/$name.log" | tail -n 1) || {
    echo "train $name failed; its log: $out/runs/$name.log" >&2
    tail -n 20 "$out/runs/$name.log" >&2
    exit 1
  }
  [[ -d $final ]] || { echo "train $name: no checkpoint '$final'" >&2; exit 1; }
  echo "$((SECONDS - t0))" > "$dir/WALL"
  code_commit > "$dir/COMMIT"
  echo "$final" > "$dir/FINAL.tmp"
  mv "$dir/FINAL.tmp" "$dir/FINAL"
  log "  $name done in $((SECONDS - t0)) s"
  echo "$final"
}

# eval_model NAME MODEL DATA: avg@k at temperature 1 and greedy, in $out/eval/NAME-t1 and
# $out/eval/NAME-greedy (per-sample records with prompt_index and reward). Skips what exists.
eval_model() {
  local name=$1 model=$2 data=$3 seed=${4:-0}
  local mode did=0
  for mode in t1 greedy; do
    local dir=$out/eval/$name-$mode
    [[ -f $dir/summary.json ]] && continue
    did=1
    local k=$eval_k temperature=1.0
    [[ $mode == greedy ]] && { k=1; temperature=0; }
    rm -rf "$dir.tmp"
    local t0=$SECONDS
    "$gopd" eval --model "$model" --data "$data" --samples "$k" --temperature "$temperature" \
      --max-new-tokens "$max_new_tokens" --chat --seed "$seed" --batch-prompts 32 \
      --out "$dir.tmp" > /dev/null 2> "$out/eval/$name-$mode.log" || {
      echo "eval $name ($mode) failed; its log: $out/eval/$name-$mode.log" >&2
      exit 1
    }
    echo "$((SECONDS - t0))" > "$dir.tmp/WALL"
    mv "$dir.tmp" "$dir"
  done
  if (( did )); then
    log "  eval $name: avg@$eval_k $(sed -nE 's/.*"avg@'"$eval_k"'": *([0-9.e-]+).*/\1/p' "$out/eval/$name-t1/summary.json") greedy $(sed -nE 's/.*"avg@1": *([0-9.e-]+).*/\1/p' "$out/eval/$name-greedy/summary.json")"
  fi
}

# distill_arm MANIFEST LABEL NAME TEACHER REFERENCE LAMBDA SEED: one single-teacher OPD/ExOPD
# arm from the shared base on the shared data (configs/repro/exopd.yaml), its evaluation and
# its manifest line.
distill_arm() {
  local manifest=$1 label=$2 name=$3 teacher=$4 reference=$5 lambda=$6 seed=$7 student=${8:-$base}
  local c=$out/common model
  model=$(train_run "$name" "$configs/exopd.yaml" --set student.path="$student" \
    --set teachers.math.path="$teacher" --set reference.path="$reference" \
    --set gopd.lambda="$lambda" --set data.train_file="$c/train.jsonl" \
    --set data.eval_file="$c/curve.jsonl" --set train.max_steps="$distill_steps" \
    --set train.eval_every="$curve_every" --set run.seed="$seed")
  eval_model "$name" "$model" "$c/eval.jsonl" "$seed"
  printf 'arm\t%s\t%s\t%s\t%s\t%s\n' "$label" "$name" "$name" "$seed" "$lambda" >> "$manifest"
}

# The larger base (width 256, 6 layers, SFT big_sft_steps) and its GRPO teacher, shared by
# strong_to_weak.sh (the teacher of a smaller student) and exopd_lambda_strong.sh (the same
# lambda sweep as experiment 1 at a base where RL transfers). Sets big_base, big_teacher (final
# checkpoints) and the names of their runs and evaluations; evaluates both.
prepare_big() {
  local c=$out/common
  big_base_run=strong_to_weak-big-base-sft
  big_teacher_run=strong_to_weak-teacher-grpo
  big_base_eval=strong_to_weak-big-base
  big_teacher_eval=strong_to_weak-teacher-grpo
  init_model big-init $big_size
  big_base=$(train_run "$big_base_run" "$configs/sft_base.yaml" \
    --set student.path="$out/models/big-init" --set data.train_file="$c/train.jsonl" \
    --set train.max_steps="$big_sft_steps" --set run.seed=0)
  big_teacher=$(train_run "$big_teacher_run" "$configs/grpo_teacher.yaml" \
    --set student.path="$big_base" --set data.train_file="$c/train.jsonl" \
    --set train.max_steps="$rl_steps" --set run.seed=0 --set data.eval_file="$c/curve.jsonl" \
    --set train.eval_every="$curve_every")
  eval_model "$big_base_eval" "$big_base" "$c/eval.jsonl"
  eval_model "$big_teacher_eval" "$big_teacher" "$c/eval.jsonl"
}

# The data, tokenizer and student base every experiment shares, in $out/common:
#   train.jsonl (arith difficulty 2), eval.jsonl (held-out split), curve.jsonl (its first
#   curve_n problems), tokenizer/ (512 pieces), base (Qwen3-style, width 256, 4 layers, SFT).
prepare_common() {
  local c=$out/common
  mkdir -p "$c" "$out/eval"
  if [[ ! -f $c/DATA_DONE ]]; then
    log "common: datasets and tokenizer"
    "$gopd" data --task arith --n "$train_n" --difficulty 2 --seed 1 --split train --out "$c/train.jsonl"
    "$gopd" data --task arith --n "$eval_n" --difficulty 2 --seed 2 --split eval --out "$c/eval.jsonl"
    head -n "$curve_n" "$c/eval.jsonl" > "$c/curve.jsonl"
    rm -rf "$c/tokenizer"
    "$gopd" tokenizer train --input "$c/train.jsonl" --vocab-size 512 --chat-format chatml \
      --out "$c/tokenizer" > /dev/null
    touch "$c/DATA_DONE"
  fi
  init_model base-init $base_size
  base=$(train_run base-sft "$configs/sft_base.yaml" --set student.path="$out/models/base-init" \
    --set data.train_file="$c/train.jsonl" --set train.max_steps="$sft_steps" --set run.seed=0)
}

# init_model NAME HIDDEN LAYERS: a random Qwen3-style model on the shared tokenizer.
init_model() {
  local name=$1 hidden=$2 layers=$3
  [[ -f $out/models/$name/model.safetensors ]] && return
  "$gopd" init-model --arch qwen3 --hidden "$hidden" --layers "$layers" --heads 4 --kv-heads 2 \
    --tokenizer "$out/common/tokenizer" --out "$out/models/$name" --seed 0 > /dev/null
}

# analyze EXP: the results page, plots and JSON of one experiment from $out.
analyze() {
  "$python" "$repo/scripts/repro/analyze.py" "$1" --out "$out" --results "$results/$1" \
    --eval-k "$eval_k" $( (( quick )) && echo --quick)
}
