#!/usr/bin/env bash
# Installs the Debian 12 packages gopd builds and runs with (DESIGN.md, "Stack").
# Idempotent: checks each package with dpkg-query, installs only what is missing, runs
# `apt-get update` at most once, and only when something must be installed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libtorch-dev            # tensors, autograd, modules (LibTorch 1.13 on Debian 12)
  libopenblas0-openmp     # BLAS for LibTorch: ~15x faster matmuls than reference BLAS
  libgloo-dev             # headers LibTorch's c10d ProcessGroupGloo.hpp includes
  libsentencepiece-dev sentencepiece
  libpcre2-dev            # Unicode-aware regex for tokenizer.json pre-tokenizers
  libicu-dev              # NFC and Unicode properties for tokenizer.json normalizers
  nlohmann-json3-dev
  libyaml-cpp-dev
  libspdlog-dev libfmt-dev
  libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  bubblewrap              # sandbox for model-written code
  python3                 # interpreter the code verifier runs candidates with
  clang-format
)

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

echo "setup: done"
