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
# The OpenCL backend's tests and the emulated GPU kernels run in their own steps below.
cargo test --workspace --release --exclude omnifuse-opencl --exclude omnifuse-gpu-emu

step "GPU kernels emulated on the CPU: the launch layer and the general path (docs/gpu-emu.md)"
emu_start=$(date +%s)
# Emulation is slow: fewer cases per op x dtype than the default 256 keep this step near 2 min.
if command -v "${OMNIFUSE_CXX:-${CXX:-c++}}" >/dev/null 2>&1; then
  OMNIFUSE_CASES=48 OMNIFUSE_REQUIRE_DEVICE=gpu-emu cargo test --release -q -p omnifuse-gpu-emu
else
  echo "no C++ compiler: the emulated GPU tests run and skip"
  cargo test --release -q -p omnifuse-gpu-emu
fi
echo "emulated GPU step took $(( $(date +%s) - emu_start ))s"

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

step "GPU compile gates: every CUDA kernel variant through NVRTC for sm_80/sm_90 + ptxas -v; the same sources through hipcc for AMD archs"
cuda_site="${OMNIFUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omnifuse}/cuda-toolkit/site/nvidia"
gate_args=(--arch 80,90 --out target/cuda-gate --json target/cuda-gate/report.json --hip-arch gfx90a,gfx908,gfx940,gfx1030)
if [ ! -f "$cuda_site/cuda_nvrtc/lib/libnvrtc.so.12" ]; then
  echo "no NVRTC wheel under $cuda_site (ci/install.sh could not fetch it): the CUDA half is skipped"
  gate_args+=(--no-cuda)
fi
gate_start=$(date +%s)
target/release/omnifuse compile-kernels "${gate_args[@]}" > target/compile-gate.txt 2>&1 || { cat target/compile-gate.txt; exit 1; }
grep -E "compiled|passed|skipped" target/compile-gate.txt
echo "compile gates took $(( $(date +%s) - gate_start ))s (per-kernel table: target/compile-gate.txt)"

step "done"
