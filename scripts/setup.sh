#!/usr/bin/env bash
# Installs what gopd builds, runs and tests with (DESIGN.md, "Stack"):
#   1. the Debian 12 packages, checked with dpkg-query; `apt-get update` at most once, and only
#      when something must be installed;
#   2. the project venv .venv/ from scripts/requirements.txt (every Python package pinned):
#      pip's torch is the LibTorch gopd builds against (CMake reads torch.utils.cmake_prefix_path);
#      transformers, tokenizers and safetensors are the tests' references. Skipped when the
#      installed lock already matches (a stamp holds the lock's checksum).
# GOPD_TORCH_DIR=<dir> builds against a PyTorch/LibTorch 2.x you already have instead (a LibTorch
# root, or the `torch` folder of a Python install: any folder with share/cmake/Torch); setup then
# skips torch and its CUDA wheels, and the tests that need torch in Python say they are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  libsentencepiece-dev sentencepiece
  libpcre2-dev            # Unicode-aware regex for tokenizer.json pre-tokenizers
  libicu-dev              # NFC and Unicode properties for tokenizer.json normalizers
  nlohmann-json3-dev
  libyaml-cpp-dev
  libspdlog-dev libfmt-dev
  libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgloo-dev             # gloo headers for c10d (pip torch ships the library, not them)
  bubblewrap              # sandbox for model-written code
  libcpp-httplib-dev      # HTTP for gopd serve and remote teachers
  python3                 # interpreter the code verifier runs candidates with
  python3-venv            # the project venv (pip's torch, the tests' references)
  clang-format
)
# `make fuzz` (scripts/fuzz.sh) also needs clang and its libFuzzer/sanitizer runtimes; it asks
# for them with --fuzz and needs nothing from the venv.
# `make golden-cpus` (scripts/golden_cpus.sh) needs qemu-user, asked for with --qemu.
fuzz_only=0
if [[ $# -gt 1 || ( $# -eq 1 && "$1" != "--fuzz" && "$1" != "--qemu" ) ]]; then
  echo "setup: unknown arguments: $*; the options are --fuzz (what make fuzz needs) and" \
       "--qemu (what make golden-cpus needs)" >&2
  exit 2
fi
if [[ "${1:-}" == "--fuzz" ]]; then
  packages=(build-essential cmake pkg-config libsentencepiece-dev libpcre2-dev libicu-dev
            nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev libfmt-dev clang libclang-rt-dev)
  fuzz_only=1
elif [[ "${1:-}" == "--qemu" ]]; then
  packages=(qemu-user)
  fuzz_only=1
fi

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$package")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#packages[@]} packages present"
else
  echo "setup: installing ${#missing[@]} missing package(s): ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo_cmd=(sudo)
    else
      echo "setup: error: need root (or sudo) to install: ${missing[*]}" >&2
      exit 1
    fi
  fi

  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo_cmd[@]}" apt-get update -q; then
    echo "setup: error: 'apt-get update' failed; check network access to the Debian archive" >&2
    exit 1
  fi
  if ! "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    echo "setup: error: 'apt-get install' failed for: ${missing[*]}" >&2
    echo "setup: are these Debian 12 (bookworm) package names available from your sources?" >&2
    exit 1
  fi
fi

if [[ $fuzz_only -eq 1 ]]; then exit 0; fi

# --- the project venv -----------------------------------------------------------------------
venv=.venv
lock=scripts/requirements.txt
python=${GOPD_SETUP_PYTHON:-python3}
requirements=$lock
if [[ -n "${GOPD_TORCH_DIR:-}" ]]; then
  if ! compgen -G "$GOPD_TORCH_DIR/share/cmake/Torch/TorchConfig.cmake" >/dev/null; then
    echo "setup: error: GOPD_TORCH_DIR=$GOPD_TORCH_DIR has no share/cmake/Torch/TorchConfig.cmake" >&2
    echo "setup: point it at a LibTorch 2.x root or at the torch folder of a PyTorch 2.x install" >&2
    exit 2
  fi
  echo "setup: LibTorch from GOPD_TORCH_DIR=$GOPD_TORCH_DIR; the venv gets no torch"
  requirements=$venv/requirements-without-torch.txt
fi
stamp=$venv/.gopd-lock
want="$(sha256sum "$lock" | cut -d' ' -f1) ${GOPD_TORCH_DIR:+without-torch}"
if [[ -x $venv/bin/python && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
  echo "setup: venv matches $lock"
else
  if [[ ! -x $venv/bin/python ]]; then
    echo "setup: creating $venv with $($python --version 2>&1)"
    "$python" -m venv "$venv"
  fi
  if [[ $requirements != "$lock" ]]; then
    grep -Ev '^(torch|triton|nvidia-|cuda-)' "$lock" >"$requirements"
  fi
  echo "setup: installing the pinned Python packages of $requirements into $venv"
  start=$(date +%s)
  if ! "$venv/bin/python" -m pip install -q --progress-bar off -r "$requirements"; then
    echo "setup: error: 'pip install -r $requirements' failed; check network access to PyPI" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
  echo "setup: venv ready in $(( $(date +%s) - start )) s ($(du -sh "$venv" | cut -f1) on disk)"
fi

echo "setup: done"
