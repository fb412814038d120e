#!/usr/bin/env bash
# CI check of the model against its float64 numpy reference (tools/reference/, MODEL.md):
# writes the omni-small model with `omnifuse init-model`, then runs every modality combination
# through `omnifuse run --json` and the reference and compares all heads (tolerance 1e-4).
# Then the same on a small numpy-written model that takes the options omni-small does not
# (pool = cls, no pair bias, even conv widths...: tools/reference/random_model.py --variant).
# Builds nothing: takes the binary from $1, else $OMNIFUSE_BIN, else target/release/omnifuse.
# Python deps (numpy, safetensors) live in a cached venv, created and filled only when missing:
#   ${OMNIFUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omnifuse}/venv
# OMNIFUSE_MODEL_BACKENDS="opencl ..." repeats the omni-small check on those devices.
# Usage: tools/check-model-reference.sh [path/to/omnifuse]
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-${OMNIFUSE_BIN:-target/release/omnifuse}}"
cache="${OMNIFUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omnifuse}"
venv="$cache/venv"

if [ ! -x "$bin" ]; then
  echo "no omnifuse binary at $bin (build it: cargo build --release -p omnifuse-cli)" >&2
  exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

if ! "$venv/bin/python" -c 'import numpy, safetensors' >/dev/null 2>&1; then
  mkdir -p "$cache"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check numpy safetensors
fi
py="$venv/bin/python"
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree
# The reference's matrices are small: threaded BLAS only spins against the Rust side and CI's
# other jobs (measured 5-10x slower on a loaded 2-core machine), so numpy gets one thread.
export OPENBLAS_NUM_THREADS=1

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$bin" init-model --out "$tmp/model" --preset omni-small
"$py" tools/reference/random_model.py --variant --out "$tmp/variant"
"$py" tools/reference/selftest.py --model "$tmp/variant"
status=0
"$py" tools/reference/check_model.py --bin "$bin" --model "$tmp/model" --work "$tmp/inputs" || status=1
echo
"$py" tools/reference/check_model.py --bin "$bin" --model "$tmp/variant" --work "$tmp/inputs-variant" || status=1
# The same model on every other device this machine has: the model code is backend-agnostic,
# so each backend must meet the same reference (OpenCL runs on PoCL in CI).
if [ -n "${OMNIFUSE_MODEL_BACKENDS:-}" ]; then
  for b in $OMNIFUSE_MODEL_BACKENDS; do
    echo
    "$py" tools/reference/check_model.py --bin "$bin" --model "$tmp/model" --work "$tmp/inputs-$b" --backend "$b" \
      || status=1
  done
fi
exit "$status"
