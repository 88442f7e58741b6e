#!/usr/bin/env bash
# Experiment 1 (G-OPD paper): ExOPD vs OPD. A teacher is made by RL (GRPO) from the student's
# own base; the base is distilled back with the teacher at lambda in {0.5, 1, 1.25, 1.5}
# (lambda = 1 is OPD; reference = the student's base), same data, steps and seeds.
# Paper: lambda = 1.25 beats lambda = 1.
# Full scale on 2 CPU cores: 52 min measured (base SFT 4, teacher GRPO 10.5, 12 arms x ~3).
# Results: results/exopd_lambda/. Usage: see scripts/repro/lib.sh (--quick, --out, --results).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
exp=exopd_lambda
lambdas="1.0 1.25 1.5 0.5"
prepare_common
c=$out/common
mkdir -p "$out/$exp"

teacher=$(train_run teacher-grpo "$configs/grpo_teacher.yaml" --set student.path="$base" \
  --set data.train_file="$c/train.jsonl" --set train.max_steps="$rl_steps" --set run.seed=0 \
  --set data.eval_file="$c/curve.jsonl" --set train.eval_every="$curve_every")
eval_model base "$base" "$c/eval.jsonl"
eval_model teacher-grpo "$teacher" "$c/eval.jsonl"

manifest=$out/$exp/manifest.tsv
{
  printf 'ref\tstudent base (SFT)\tbase\t%s\n' "base-sft"
  printf 'ref\tteacher (GRPO from the base)\tteacher-grpo\t%s\n' "teacher-grpo"
} > "$manifest.tmp"
for lambda in $lambdas; do
  for seed in $seeds; do
    distill_arm "$manifest.tmp" "lambda=$lambda" "$exp-l$lambda-s$seed" "$teacher" student_init \
      "$lambda" "$seed"
  done
done
mv "$manifest.tmp" "$manifest"
analyze "$exp"
