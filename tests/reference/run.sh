#!/usr/bin/env bash
# Runs one reference test (tests/reference/*_test.py) with the venv's Python:
#   run.sh PYTHON TEST.py ARGS...
# Exit 77 (ctest: skipped) when that Python does not exist: the venv is made by scripts/setup.sh.
set -euo pipefail
python=$1
shift
if [[ ! -x $python ]]; then
  echo "skipped: $python not found (run scripts/setup.sh to create the venv)"
  exit 77
fi
exec "$python" "$@"
