#!/usr/bin/env bash
# THE test command of omnifuse. On a fresh clone it installs what the tests need when it is
# missing (idempotent, quiet), then runs rustfmt, clippy with warnings as errors, and every
# test of the workspace in release mode. Exit status is non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_INCREMENTAL=0
start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "install: what the tests need"
bash ci/install.sh

step "rustfmt"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --release --quiet -- -D warnings

step "tests (release)"
# The OpenCL backend's tests run in their own step below, where a device is required.
cargo test --workspace --release --exclude omnifuse-opencl

step "OpenCL backend: conformance on PoCL (or skip where no OpenCL device exists)"
ocl_start=$(date +%s)
if clinfo -l 2>/dev/null | grep -q "Device"; then
  OMNIFUSE_REQUIRE_DEVICE=opencl cargo test --release -q -p omnifuse-opencl
else
  echo "no OpenCL device (clinfo -l lists none): the OpenCL tests run and skip"
  cargo test --release -q -p omnifuse-opencl
fi
echo "OpenCL step took $(( $(date +%s) - ocl_start ))s"

step "conformance of the lower SIMD levels (this CPU's best level ran above)"
for isa in avx2 portable; do
  echo "-- OMNIFUSE_CPU_ISA=$isa"
  OMNIFUSE_CPU_ISA=$isa cargo test --release -q -p omnifuse-cpu --test conformance
done

step "model vs its independent numpy reference (tools/reference, MODEL.md), on CPU and OpenCL"
model_backends=""
if clinfo -l 2>/dev/null | grep -q "Device"; then model_backends="opencl"; fi
OMNIFUSE_MODEL_BACKENDS="$model_backends" bash tools/check-model-reference.sh target/release/omnifuse

step "all-MiniLM-L6-v2 vs sentence-transformers' own vectors (tools/minilm, tests/data/minilm_golden.json)"
minilm_dir=$(bash tools/minilm/fetch.sh)
OMNIFUSE_MINILM_DIR="$minilm_dir" cargo test --release -q -p omnifuse-cli --test minilm -- --nocapture

step "CUDA compile gate: every kernel variant through NVRTC for sm_80 and sm_90, ptxas -v, no spills in GEMM/attention"
cuda_site="${OMNIFUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omnifuse}/cuda-toolkit/site/nvidia"
if [ -f "$cuda_site/cuda_nvrtc/lib/libnvrtc.so.12" ]; then
  target/release/omnifuse compile-kernels --arch 80,90 --out target/cuda-gate --json target/cuda-gate/report.json
else
  echo "no NVRTC wheel under $cuda_site (ci/install.sh could not fetch it): the CUDA compile gate is skipped"
fi

step "done"
