#!/usr/bin/env bash
# Experiment 2 (G-OPD paper, multi-teacher merging): two domain experts are made by
# domain-specific RL (GRPO) from one base, one per family of arithmetic problems (addsub: only
# + and -; muldiv: some * or /; scripts/repro/families.py), and merged back into the base by
# OPD (lambda 1) and by ExOPD (lambda 1.25), each record routed to its family's expert by its
# "teacher" field; reference = the base. Paper: the ExOPD student beats each domain teacher
# on that teacher's domain.
# Full scale on 2 CPU cores: 55 min measured (of it the shared base 4 min; the two experts 23 min,
# six merging arms 3 min each, evaluations 9 min). Results: results/multi_teacher/.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
exp=multi_teacher
prepare_common
c=$out/common
d=$out/$exp
mkdir -p "$d"

if [[ ! -f $d/DATA_DONE ]]; then
  "$python" "$repo/scripts/repro/families.py" "$c/train.jsonl" "$d/train"
  # held-out problems of each family: eval_n of each from a larger draw of problems not in
  # the training file (the eval split alone has too few muldiv problems at difficulty 2)
  "$gopd" data --task arith --n $((eval_n * 3)) --difficulty 2 --seed 3 --split all \
    --exclude "$c/train.jsonl" --out "$d/eval_all.jsonl"
  "$python" "$repo/scripts/repro/families.py" "$d/eval_all.jsonl" "$d/eval_all"
  for family in addsub muldiv; do
    head -n "$eval_n" "$d/eval_all.$family.jsonl" > "$d/eval.$family.jsonl"
    [[ $(wc -l < "$d/eval.$family.jsonl") -eq $eval_n ]] || { echo "too few $family eval problems" >&2; exit 1; }
  done
  # the in-training curve: curve_n problems, half of each family
  { head -n $((curve_n / 2)) "$d/eval.addsub.jsonl"; head -n $((curve_n / 2)) "$d/eval.muldiv.jsonl"; } > "$d/curve.jsonl"
  touch "$d/DATA_DONE"
fi

manifest=$d/manifest.tsv
: > "$manifest.tmp"
declare -A expert
for family in addsub muldiv; do
  expert[$family]=$(train_run "$exp-expert-$family" "$configs/grpo_teacher.yaml" \
    --set student.path="$base" --set data.train_file="$d/train.$family.jsonl" \
    --set train.max_steps="$rl_steps" --set run.seed=0 --set data.eval_file="$d/curve.jsonl" \
    --set train.eval_every="$curve_every")
done
for family in addsub muldiv; do
  eval_model "$exp-base-$family" "$base" "$d/eval.$family.jsonl"
  printf 'ref\tstudent base (SFT)\t%s\tbase-sft\t%s\n' "$exp-base-$family" "$family" >> "$manifest.tmp"
  for teacher in addsub muldiv; do
    eval_model "$exp-expert-$teacher-on-$family" "${expert[$teacher]}" "$d/eval.$family.jsonl"
    printf 'ref\t%s expert (GRPO on %s)\t%s\t%s\t%s\n' "$teacher" "$teacher" \
      "$exp-expert-$teacher-on-$family" "$exp-expert-$teacher" "$family" >> "$manifest.tmp"
  done
done
for lambda in 1.0 1.25; do
  for seed in $seeds; do
    name=$exp-l$lambda-s$seed
    model=$(train_run "$name" "$configs/exopd_multi.yaml" --set student.path="$base" \
      --set teachers.addsub.path="${expert[addsub]}" --set teachers.muldiv.path="${expert[muldiv]}" \
      --set reference.path=student_init \
      --set gopd.lambda="$lambda" --set data.train_file="$d/train.mixed.jsonl" \
      --set data.eval_file="$d/curve.jsonl" --set train.max_steps="$distill_steps" \
      --set train.eval_every="$curve_every" --set run.seed="$seed")
    for family in addsub muldiv; do
      eval_model "$name-on-$family" "$model" "$d/eval.$family.jsonl" "$seed"
      printf 'arm\tlambda=%s\t%s-on-%s\t%s\t%s\t%s\t%s\n' "$lambda" "$name" "$family" "$name" \
        "$seed" "$lambda" "$family" >> "$manifest.tmp"
    done
  done
done
mv "$manifest.tmp" "$manifest"
analyze "$exp"
