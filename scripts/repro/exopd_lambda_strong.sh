#!/usr/bin/env bash
# Experiment 1 again, at a base where RL transfers: the same lambda sweep as exopd_lambda.sh
# (lambda in {0.5, 1, 1.25, 1.5}, reference = the student's base, same data, steps and seeds),
# with the larger base of strong_to_weak.sh as the student (width 256, 6 layers, SFT 900 steps)
# and its GRPO teacher. The smaller base gained only 3.3 points from RL, too little for a
# 5%-of-the-gain effect to be measurable; this base gains about 30 (results/strong_to_weak/).
# Paper: lambda = 1.25 beats lambda = 1.
# Full scale on 2 CPU cores: 78 min measured, of it the larger base (8) and its GRPO teacher (15),
# shared with strong_to_weak.sh; the twelve arms ~4.5 min each with evaluation.
# Results: results/exopd_lambda_strong/. Usage: see scripts/repro/lib.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
exp=exopd_lambda_strong
lambdas="1.0 1.25 1.5 0.5"
prepare_common
prepare_big
c=$out/common
mkdir -p "$out/$exp"

manifest=$out/$exp/manifest.tsv
{
  printf 'ref\tstudent base (width 256, 6 layers, SFT)\t%s\t%s\n' "$big_base_eval" "$big_base_run"
  printf 'ref\tteacher (GRPO from the base)\t%s\t%s\n' "$big_teacher_eval" "$big_teacher_run"
} > "$manifest.tmp"
for lambda in $lambdas; do
  for seed in $seeds; do
    distill_arm "$manifest.tmp" "lambda=$lambda" "$exp-l$lambda-s$seed" "$big_teacher" student_init \
      "$lambda" "$seed" "$big_base"
  done
done
mv "$manifest.tmp" "$manifest"
analyze "$exp"
