#!/usr/bin/env bash
# Experiment 3 (G-OPD paper, strong-to-weak with reward correction): a LARGER base (width 256,
# 6 layers, longer SFT) is RL'd (GRPO) into a teacher; the student is the shared smaller base
# (width 256, 4 layers). Arms: OPD (lambda 1), ExOPD (lambda 1.25, reference = the student's
# base) and ExOPD with reward correction (lambda 1.25, reference = the teacher's pre-RL base,
# so the extrapolated reward is what RL taught the teacher, not the gap between the bases).
# Paper: reward correction improves further over ExOPD.
# Full scale on 2 CPU cores: 56 min measured (of it the shared base 4 min, the larger base 8,
# its GRPO 15, nine arms ~3 each with evaluation). Results: results/strong_to_weak/.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
exp=strong_to_weak
prepare_common
c=$out/common
mkdir -p "$out/$exp"

prepare_big
teacher=$big_teacher
eval_model base "$base" "$c/eval.jsonl"

manifest=$out/$exp/manifest.tsv
{
  printf 'ref\tstudent base (width 256, 4 layers, SFT)\tbase\tbase-sft\n'
  printf 'ref\tteacher base (width 256, 6 layers, SFT)\t%s\t%s\n' "$big_base_eval" "$big_base_run"
  printf 'ref\tteacher (GRPO from the teacher base)\t%s\t%s\n' "$big_teacher_eval" "$big_teacher_run"
} > "$manifest.tmp"
# arm: label, lambda, reference
arms=("OPD|1.0|student_init" "ExOPD|1.25|student_init" "ExOPD + reward correction|1.25|$big_base")
tags=(opd exopd exopd-rc)
for i in "${!arms[@]}"; do
  IFS='|' read -r label lambda reference <<< "${arms[$i]}"
  for seed in $seeds; do
    distill_arm "$manifest.tmp" "$label" "$exp-${tags[$i]}-s$seed" "$teacher" "$reference" \
      "$lambda" "$seed"
  done
done
mv "$manifest.tmp" "$manifest"
analyze "$exp"
