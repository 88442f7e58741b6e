#!/usr/bin/env bash
# The prepared GPU check. Two halves, because the GPU machines have no network and no build
# dependencies of gopd (yaml-cpp, spdlog, sentencepiece...), but carry the same PyTorch (2.11.0,
# CUDA 13.0) that gopd builds against here:
#
#   scripts/gpu_check.sh --bundle [BUILD]   here, after a build: packs gopd, the CUDA kernel
#                                           test and cuda_ops_bench with the shared libraries
#                                           they take from the system (not LibTorch's, not
#                                           glibc's) into .gpu_bundle/gopd.tar.xz (git-ignored,
#                                           ~15 MB; the device tool carries at most 64 MiB)
#   scripts/gpu_check.sh                    on the GPU machine, from the repository root: runs
#                                           the bundle (or build/, if gopd was built there)
#                                           against that machine's PyTorch and prints every
#                                           result; exit 0 only when every check passed
#
# What it runs: nvidia-smi; `gopd --version` (LibTorch, CUDA, kernel archs, devices); the CUDA
# kernel parity test (gopd's kernels against their CPU reference); cuda_ops_bench (the four
# fused ops through the LibTorch dispatch on CUDA tensors against their CPU results, with GB/s);
# training parity: the same tiny jobs (sft, gopd sampled-token and full-vocab, grpo, lens; fixed
# seeds) on cuda vs cpu, losses per step within the stated tolerance (fp32 1e-3 relative, bf16
# autocast 5e-2); `gopd bench train --device cuda` on a Qwen3-0.6B-shaped ExOPD step with
# 1k-token responses (rollout / scoring / update tokens/s, update MFU, peak GPU memory per
# phase) and transformers' `generate` on the same model, batch and lengths (the rollout baseline).
#   scripts/gpu_check.sh --full   adds the 1.7B-shaped step and the 4B-shaped ExOPD step with
#                                 8k-token responses (activation checkpointing, 16k-token
#                                 micro-batches): does it fit, at what peak memory (~6 min)
#   --nproc N                     data parallel over N GPUs (default: all, up to 8; needs 2+):
#                                 the tiny gopd job by N NCCL ranks against one GPU, and
#                                 `gopd bench train --nproc N` (1 vs N ranks, ZeRO-1 off/on)
# Device call, e.g.: carry [".gpu_bundle"], command "bash scripts/gpu_check.sh", timeout 600.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bundle_dir=$root/.gpu_bundle
programs=(bin/gopd bin/gopd_cuda_kernel_test bench/cuda_ops_bench)

die() { echo "gpu_check: $*" >&2; exit 2; }

if [[ ${1:-} == --bundle ]]; then
  build=${2:-$root/build}
  for program in "${programs[@]}"; do
    [[ -x $build/$program ]] || die "$build/$program not found: build first (a CUDA toolkit must be present for the kernel test)"
  done
  staging=$(mktemp -d)
  trap 'rm -rf "$staging"' EXIT
  mkdir -p "$staging/bin" "$staging/bench" "$staging/lib"
  for program in "${programs[@]}"; do cp "$build/$program" "$staging/$program"; done
  # The system libraries the programs need, less glibc/libstdc++ (the GPU machine has its own,
  # newer) and LibTorch/CUDA (the GPU machine's PyTorch provides them).
  for program in "${programs[@]}"; do ldd "$build/$program"; done |
    awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
    while read -r name path; do
      case $name in
        libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|libutil.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) continue ;;
      esac
      case $path in */site-packages/*|*/torch/lib/*|*/nvidia/*|*/cuda*) continue ;; esac
      cp -L "$path" "$staging/lib/$name"
    done
  torch_version=$("$build/bin/gopd" --version 2>/dev/null | sed -n 's/^libtorch \([^ ]*\).*/\1/p' | head -1)
  echo "${torch_version:-unknown}" > "$staging/LIBTORCH_VERSION"
  git -C "$root" rev-parse HEAD > "$staging/COMMIT" 2>/dev/null || echo unknown > "$staging/COMMIT"
  mkdir -p "$bundle_dir"
  tar -cJf "$bundle_dir/gopd.tar.xz.partial" -C "$staging" . && mv "$bundle_dir/gopd.tar.xz.partial" "$bundle_dir/gopd.tar.xz"
  size=$(stat -c %s "$bundle_dir/gopd.tar.xz")
  echo "gpu_check: bundle $bundle_dir/gopd.tar.xz: $((size / 1024 / 1024)) MiB, libtorch ${torch_version:-unknown}, libraries: $(ls "$staging/lib" | tr '\n' ' ')"
  (( size < 48 * 1024 * 1024 )) || die "the bundle is over 48 MiB: it and the repository must fit the device tool's 64 MiB"
  exit 0
fi
full=0
nproc=""  # data-parallel ranks (NCCL): default every GPU, up to 8
while [[ $# -gt 0 ]]; do
  case $1 in
    --full) full=1; shift ;;
    --nproc) nproc=${2:-}; shift 2 ;;
    *) die "usage: gpu_check.sh [--full] [--nproc N] | --bundle [BUILD_DIR]" ;;
  esac
done

# ---- on the GPU machine ----
status=0
check() {  # check NAME COMMAND...: runs it, prints every line, records the result
  local name=$1
  shift
  echo "== $name: $*"
  "$@" 2>&1
  local rc=$?
  echo "== $name: exit $rc"
  if [[ $rc -ne 0 ]]; then status=1; fi
}

python=$(command -v python3 || true)
torch_lib=
if [[ -n $python ]]; then
  torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)
  echo "gpu_check: python $("$python" --version 2>&1) torch $("$python" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null)"
fi
if [[ -f $bundle_dir/gopd.tar.xz ]]; then
  run_dir=$(mktemp -d)
  trap 'rm -rf "$run_dir"' EXIT
  tar -xJf "$bundle_dir/gopd.tar.xz" -C "$run_dir" || die "cannot unpack $bundle_dir/gopd.tar.xz"
  [[ -d $torch_lib ]] || die "no PyTorch found through python3 (the bundle runs on that PyTorch's LibTorch)"
  export LD_LIBRARY_PATH=$run_dir/lib:$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "gpu_check: bundle of commit $(cat "$run_dir/COMMIT"), built against libtorch $(cat "$run_dir/LIBTORCH_VERSION")"
elif [[ -x $root/build/bin/gopd ]]; then
  run_dir=$root/build
  echo "gpu_check: using $run_dir (built on this machine)"
else
  die "neither .gpu_bundle/gopd.tar.xz (make it with --bundle where gopd builds) nor build/bin/gopd"
fi
missing=$(ldd "$run_dir/bin/gopd" 2>&1 | grep "not found")
[[ -z $missing ]] || { echo "$missing"; die "gopd cannot load its libraries here"; }
echo "gpu_check: gopd loads $(ldd "$run_dir/bin/gopd" | awk '/libtorch_cuda/ {print $3}')"

check nvidia-smi nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader
check version "$run_dir/bin/gopd" --version
check cuda-kernel-parity "$run_dir/bin/gopd_cuda_kernel_test"
check cuda-fused-ops "$run_dir/bench/cuda_ops_bench"

# ---- training on the GPU ----
# GPU_CHECK_DEVICE=cpu GPU_CHECK_SKIP_BENCH=1 runs this half on the CPU: a dry run of the script.
device_under_test=${GPU_CHECK_DEVICE:-cuda}
work=$(mktemp -d)
gopd=$run_dir/bin/gopd
# Tiny models and arith data (built on the CPU), then the same jobs on cpu and cuda.
check tiny-inputs timeout 120 "$gopd" bench train --keep "$work/tiny" --steps 1 --warmup 0 --skip-objective \
  --batch-prompts 2 --max-new-tokens 8
cat > "$work/job.yaml" <<YAML
algorithm: gopd
run: {output_dir: $work/runs, seed: 7, threads: 4}
student: {path: $work/tiny/student}
teachers: {math: {path: $work/tiny/teacher, dtype: float32}}
reference: {dtype: float32}
data: {train_file: $work/tiny/train.jsonl, shuffle: false}
rollout: {batch_prompts: 8, n: 2, max_new_tokens: 24}
optim: {lr: 1.0e-3, micro_batch_size: 8}
train: {max_steps: 3}
YAML
parity() {  # parity NAME STEPS SETTINGS...: cpu fp32 vs cuda fp32 vs cuda bf16 of one job
  local name=$1 steps=$2
  shift 2
  for variant in cpu cuda cuda-bf16; do
    local device=$device_under_test precision=fp32
    [[ $variant == cpu ]] && device=cpu
    [[ $variant == cuda-bf16 ]] && precision=bf16
    timeout 300 "$gopd" train "$work/job.yaml" --set run.name="$name-$variant" --set train.max_steps="$steps" \
      --set run.device=$device --set train.precision=$precision "$@" > "$work/$name-$variant.log" 2>&1 ||
      { echo "$name $variant failed:"; tail -5 "$work/$name-$variant.log"; return 1; }
  done
  "$python" - "$work/runs" "$name" <<'PY'
import json, math, sys
runs, name = sys.argv[1], sys.argv[2]
KEYS = ("loss/sft", "loss/gopd_kl", "loss/policy", "optim/grad_norm", "rollout/entropy")
def lines(variant):
    return [json.loads(l) for l in open(f"{runs}/{name}-{variant}/metrics.jsonl")]
ok = True
for cpu, gpu, bf16 in zip(lines("cpu"), lines("cuda"), lines("cuda-bf16")):
    keys = [k for k in KEYS if k in cpu]
    # fp32 on the GPU: the CPU's numbers (same samples: the logits agree to the last bits).
    fp32_ok = all(abs(cpu[k] - gpu[k]) <= 1e-3 * max(1.0, abs(cpu[k])) for k in keys)
    if "rollout/entropy" in cpu:
        # bf16 autocast samples other tokens than fp32, so its losses are not comparable; the
        # sampler and the trainer must agree with each other (importance weight 1) instead.
        # (The vocabulary objectives have no importance weight: finite numbers then.)
        weight = bf16.get("actor/importance_weight_mean", 1.0)
        bf16_ok = abs(weight - 1.0) <= 2e-2 and all(math.isfinite(bf16[k]) for k in keys)
    else:
        bf16_ok = all(abs(cpu[k] - bf16[k]) <= 5e-2 * max(1.0, abs(cpu[k])) for k in keys)
    ok &= fp32_ok and bf16_ok
    print(json.dumps({"check": "cuda_vs_cpu", "job": name, "step": cpu["step"],
                      "cpu": {k: cpu[k] for k in keys}, "cuda_fp32": {k: gpu[k] for k in keys},
                      "cuda_bf16": {k: bf16[k] for k in keys},
                      "bf16_importance_weight_mean": bf16.get("actor/importance_weight_mean"),
                      "fp32_within_1e-3": fp32_ok, "bf16_ok": bf16_ok,
                      "peak_gpu_mem_gb": gpu.get("perf/peak_gpu_mem_gb"),
                      "peak_gpu_mem_gb_bf16": bf16.get("perf/peak_gpu_mem_gb")}))
sys.exit(0 if ok else 1)
PY
}
# Sampling jobs compare their first step (a later step may sample differently after a logit
# differs in the last bit); sft has no sampling and compares three.
check parity-sft parity sft 3 --set algorithm=sft
check parity-gopd-sampled parity gopd 1
check parity-gopd-full-vocab parity gopd-fv 1 --set gopd.objective=full_vocab --set train.lm_head_chunk_tokens=16
check parity-grpo parity grpo 1 --set algorithm=grpo --set grpo.kl_beta=0.05
check parity-lens parity lens 1 --set algorithm=lens
check parity-activation-checkpointing parity ckpt 1 --set train.activation_checkpointing=true

# Data parallel over NCCL: N ranks (one GPU each) against the one-GPU run of the same job.
gpus=$("$python" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
nproc=${nproc:-$(( gpus < 8 ? gpus : 8 ))}
dp_parity() {  # dp_parity N: step-1 metrics of N ranks vs the one-GPU fp32 run (gopd-cuda)
  timeout 300 "$gopd" launch --nproc "$1" -- train "$work/job.yaml" --set run.name=dp-nccl --set train.max_steps=1 \
    --set rollout.batch_prompts=$((8 * $1)) --set run.device=cuda --set train.precision=fp32 > "$work/dp.log" 2>&1 ||
    { tail -20 "$work/dp.log"; return 1; }
  timeout 300 "$gopd" train "$work/job.yaml" --set run.name=dp-one --set train.max_steps=1 \
    --set rollout.batch_prompts=$((8 * $1)) --set run.device=cuda --set train.precision=fp32 > "$work/dp-one.log" 2>&1 ||
    { tail -5 "$work/dp-one.log"; return 1; }
  "$python" - "$work/runs" <<'PY'
import json, sys
one = json.loads(open(f"{sys.argv[1]}/dp-one/metrics.jsonl").readline())
many = json.loads(open(f"{sys.argv[1]}/dp-nccl/metrics.jsonl").readline())
keys = ("loss/policy", "optim/grad_norm", "rollout/entropy", "gopd/reverse_kl_estimate")
ok = all(abs(one[k] - many[k]) <= 1e-3 * max(1.0, abs(one[k])) for k in keys)
print(json.dumps({"check": "nccl_vs_one_gpu", "ranks": many.get("dist/world_size"),
                  "one_gpu": {k: one[k] for k in keys}, "nccl": {k: many[k] for k in keys},
                  "allreduce_s": many.get("perf/allreduce_s"), "within_1e-3": ok}))
sys.exit(0 if ok else 1)
PY
}
if [[ $device_under_test == cuda && $nproc -ge 2 ]]; then
  check dp-nccl-parity dp_parity "$nproc"
  check bench-dp-nccl timeout 400 "$gopd" bench train --nproc "$nproc" --device cuda --steps 2 \
    --batch-prompts $((8 * nproc)) --max-new-tokens 64 --hidden 256 --layers 4 --threads 4
else
  echo "data parallel (NCCL): skipped ($gpus GPU visible; needs 2 or more)"
fi

# ExOPD steps of real shapes (random weights, vocab 151,936) and the transformers baseline.
bench_shape() {  # bench_shape SHAPE PROMPTS TOKENS [extra bench options]
  local shape=$1 prompts=$2 tokens=$3
  shift 3
  timeout 540 "$gopd" bench train --device "$device_under_test" --shape "$shape" --batch-prompts "$prompts" --n 1 \
    --max-new-tokens "$tokens" --steps 1 --warmup 1 --skip-objective --keep "$work/$shape" "$@"
}
if [[ -n ${GPU_CHECK_SKIP_BENCH:-} ]]; then full=0; else
check bench-qwen3-0.6b bench_shape qwen3-0.6b 64 1024 --micro-batch-tokens 32768
check hf-generate-qwen3-0.6b timeout 300 "$python" "$root/scripts/hf_generate_bench.py" --model "$work/qwen3-0.6b/student" \
  --sequences 64 --prompt-tokens 40 --max-new-tokens 1024
# issue 19's rollout comparison on the GPU: gopd bench rollout against generate, batch 1 and 64,
# 32-token prompts, 256 new tokens, bf16, the same model directory
check bench-rollout-qwen3-0.6b timeout 300 "$gopd" bench rollout --model "$work/qwen3-0.6b/student" \
  --device cuda --dtype bf16 --batch 1,64 --baseline-max-batch 0 --prompt-tokens 32 --new-tokens 256
for sequences in 1 64; do
  check "hf-generate-rollout-b$sequences" timeout 300 "$python" "$root/scripts/hf_generate_bench.py" \
    --model "$work/qwen3-0.6b/student" --sequences "$sequences" --prompt-tokens 32 --max-new-tokens 256
done
fi
if [[ $full -eq 1 ]]; then
  rm -rf "$work/qwen3-0.6b"
  check bench-qwen3-1.7b bench_shape qwen3-1.7b 32 2048 --micro-batch-tokens 32768
  rm -rf "$work/qwen3-1.7b"
  check bench-qwen3-4b-8k bench_shape qwen3-4b 8 8192 --warmup 0 --activation-checkpointing --micro-batch-tokens 16384
fi
rm -rf "$work"

# Without a visible GPU both programs report "skipped": on a GPU machine that is a failure.
if [[ $status -eq 0 ]] && ! "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: this machine's PyTorch sees no CUDA device"
  status=1
fi
if [[ $status -eq 0 ]]; then echo "gpu_check: PASS"; else echo "gpu_check: FAIL"; fi
exit $status
