#!/usr/bin/env bash
# `make demo`: the main job, end to end on built-in data, in a few minutes on 2 CPU cores.
# 1. generate train and held-out eval sets of the arithmetic task (difficulty 2),
# 2. check every shipped job config,
# 3. train a sentencepiece tokenizer on the data and build two random Qwen3-style models:
#    a small student (2 layers, width 128) and a larger teacher (4 layers, width 128),
# 4. SFT the teacher until it is clearly good, and the student only briefly (a weak base),
# 5. ExOPD: on-policy distillation with reward extrapolation (G-OPD, lambda 1.25, reference =
#    the student base) from the student base with that teacher,
# 6. evaluate student before, teacher and student after on held-out problems: avg@4 at
#    temperature 1, the distribution the student samples from and distillation reshapes,
# 7. print the table; exit non-zero unless the student improved by >= 3 standard errors.
# Job settings are in configs/demo/*.yaml; outputs go to demo_out/ (runs in demo_out/runs).
set -euo pipefail
gopd=${1:-build/bin/gopd}
out=demo_out
threads=2
eval_n=1000          # held-out eval problems
max_new_tokens=40    # worked solutions are ~30 tokens
seed=${DEMO_SEED:-0}  # DEMO_SEED=N reruns it with other data, init and training seeds
eval_k=4             # samples per eval problem (avg@k at the rollout temperature, 1.0)
# With more busy threads than cores, spinning OpenMP workers slow LibTorch down many times
# over; passive waiting keeps a demo on a shared machine close to its uncontended time.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

start=$SECONDS
phase_ends=()   # seconds since start at the end of each timed phase
phase() {  # phase N TITLE: prints a numbered header with the elapsed time
  echo
  echo "== [$1/7] $2   (t = $((SECONDS - start)) s)"
}
mark() { phase_ends+=("$((SECONDS - start))"); }

mkdir -p "$out"
rm -rf "$out/runs" "$out/models" "$out/eval"

phase 1 "datasets (gopd data)"
"$gopd" data --task arith --n 4000 --difficulty 2 --seed $((seed + 1)) --split train --out "$out/arith_train.jsonl"
"$gopd" data --task arith --n "$eval_n" --difficulty 2 --seed $((seed + 2)) --split eval --out "$out/arith_eval.jsonl"
echo "-- one record:"
head -n 1 "$out/arith_train.jsonl"
mark

phase 2 "job configs (gopd config check)"
for config in configs/*.yaml configs/paper/*.yaml configs/demo/*.yaml; do
  "$gopd" config check "$config"
done
mark

phase 3 "tokenizer and models (gopd tokenizer train / init-model)"
"$gopd" tokenizer train --input "$out/arith_train.jsonl" --vocab-size 512 --chat-format chatml \
  --out "$out/tokenizer"
params_of() {  # the parameter count init-model reports
  sed -nE 's/.*qwen3 model \(([0-9]+) parameters.*/\1/p' "$1"
}
"$gopd" init-model --arch qwen3 --hidden 128 --layers 4 --heads 4 --kv-heads 2 \
  --tokenizer "$out/tokenizer" --out "$out/models/teacher-init" --seed "$seed" 2>&1 | tee "$out/teacher-init.log"
"$gopd" init-model --arch qwen3 --hidden 128 --layers 2 --heads 4 --kv-heads 2 \
  --tokenizer "$out/tokenizer" --out "$out/models/student-init" --seed $((seed + 1)) 2>&1 | tee "$out/student-init.log"
teacher_params=$(params_of "$out/teacher-init.log")
student_params=$(params_of "$out/student-init.log")
mark

phase 4 "SFT: teacher (configs/demo/sft_teacher.yaml), student base (configs/demo/sft_student_base.yaml)"
# log every 50th step only: the full log is in the run directory
# gopd train prints the directory of its final checkpoint (checkpoints/step_N) on stdout
teacher=$("$gopd" train configs/demo/sft_teacher.yaml --set run.seed="$seed" --set run.log_every=50 | tail -n 1)
student_base=$("$gopd" train configs/demo/sft_student_base.yaml --set run.seed="$seed" --set run.log_every=10 | tail -n 1)
mark

phase 5 "ExOPD: G-OPD, lambda 1.25, reference = student base (configs/demo/exopd.yaml)"
student_after=$("$gopd" train configs/demo/exopd.yaml --set run.seed="$seed" --set run.log_every=25 \
  --set student.path="$student_base" --set teachers.math.path="$teacher" | tail -n 1)
mark

# What configs/quickstart.yaml, exopd_arith.yaml and opd_arith.yaml (and the README's tour)
# train from: the student base and the teacher, under stable names.
ln -sfn "$(realpath --relative-to="$out/models" "$student_base")" "$out/models/arith-student-base"
ln -sfn "$(realpath --relative-to="$out/models" "$teacher")" "$out/models/arith-teacher"

phase 6 "held-out evaluation (gopd eval, $eval_n problems x $eval_k samples, temperature 1)"
evaluate() {  # evaluate NAME MODEL
  "$gopd" eval --model "$2" --data "$out/arith_eval.jsonl" --samples "$eval_k" --temperature 1.0 \
    --max-new-tokens "$max_new_tokens" --chat --seed 0 --threads "$threads" --out "$out/eval/$1" > /dev/null
  sed -nE "s/.*\"avg@$eval_k\": *([0-9.e-]+).*/\1/p" "$out/eval/$1/summary.json" | head -n 1
}
before=$(evaluate student-before "$student_base")
teacher_score=$(evaluate teacher "$teacher")
after=$(evaluate student-after "$student_after")
mark

phase 7 "summary"
printf '  %-16s %9s   %s\n' model params "avg@$eval_k ($eval_n held-out problems, temperature 1)"
printf '  %-16s %9s   %.3f\n' "student before" "$student_params" "$before"
printf '  %-16s %9s   %.3f\n' teacher "$teacher_params" "$teacher_score"
printf '  %-16s %9s   %.3f\n' "student after" "$student_params" "$after"
echo
names=("data" "configs" "tokenizer+init" "SFT" "ExOPD" "eval")
prev=0
line=""
for i in "${!phase_ends[@]}"; do
  line+="${names[$i]} $((phase_ends[i] - prev)) s, "
  prev=${phase_ends[$i]}
done
echo "  wall time: ${line}total $((SECONDS - start)) s"
echo "  outputs in $out/ (runs in $out/runs, eval samples in $out/eval)"
# The gain and its standard error, paired by problem: d_i = after_i - before_i, where x_i is
# the fraction of problem i's samples judged correct; SE = sd(d) / sqrt(N).
read -r gain se z < <(awk '
  function grab(line, key,   m) {
    if (!match(line, "\"" key "\": *[-0-9.e]+")) return -1
    m = substr(line, RSTART, RLENGTH); sub(/.*: */, "", m); return m + 0
  }
  { i = grab($0, "prompt_index"); r = grab($0, "reward"); if (i < 0 || r < 0) next
    if (FNR == NR) { b[i] += r; nb[i]++ } else { a[i] += r; na[i]++ } }
  END {
    n = 0; s = 0; ss = 0
    for (i in b) if (i in a) { d = a[i] / na[i] - b[i] / nb[i]; n++; s += d; ss += d * d }
    if (n < 2) { print "0 1 0"; exit }
    mean = s / n; var = (ss - n * mean * mean) / (n - 1); se = sqrt(var / n)
    if (se < 1e-9) se = 1e-9
    printf "%+.3f %.3f %.1f\n", mean, se, mean / se
  }' "$out/eval/student-before/samples.jsonl" "$out/eval/student-after/samples.jsonl")
if awk -v z="$z" 'BEGIN { exit !(z >= 3) }'; then
  echo "RESULT: the student improved: avg@$eval_k $before -> $after ($gain, $z standard errors of $se)"
else
  echo "RESULT: the student did NOT improve clearly: avg@$eval_k $before -> $after ($gain, $z standard errors of $se; 3 needed)"
  exit 1
fi
