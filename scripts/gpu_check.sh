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
# fused ops through the LibTorch dispatch on CUDA tensors against their CPU results, with GB/s).
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
[[ $# -eq 0 ]] || die "usage: gpu_check.sh [--bundle [BUILD_DIR]]"

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
# Without a visible GPU both programs report "skipped": on a GPU machine that is a failure.
if [[ $status -eq 0 ]] && ! "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: this machine's PyTorch sees no CUDA device"
  status=1
fi
if [[ $status -eq 0 ]]; then echo "gpu_check: PASS"; else echo "gpu_check: FAIL"; fi
exit $status
