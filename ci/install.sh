#!/usr/bin/env bash
# Installs what building and testing omnifuse needs, only where it is missing, so running it
# twice does nothing the second time: the Rust components rustfmt and clippy, and the Debian
# packages below.
set -euo pipefail

need_component() {
  if ! cargo "$1" --version >/dev/null 2>&1; then
    echo "installing rust component $2"
    rustup component add "$2" >/dev/null
  fi
}
need_component fmt rustfmt
need_component clippy clippy

# OpenCL: the ICD loader, its headers and PoCL (a CPU OpenCL driver), so the OpenCL backend's
# conformance runs for real. The backend loads libOpenCL at run time: nothing here is needed
# to build, only to test. Installed with apt when missing; elsewhere the tests skip.
need_debs() {
  local skips="$1"
  shift
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "note: apt-get not found; not installing ${missing[*]} ($skips)"
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "note: not root and no sudo; not installing ${missing[*]} ($skips)"
      return 0
    fi
  fi
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
    || { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; } \
    || echo "WARNING: could not install ${missing[*]} ($skips)"
}
need_debs "the OpenCL conformance will skip instead of running on PoCL" pocl-opencl-icd ocl-icd-opencl-dev clinfo

# valgrind: the C ABI test (crates/capi/tests/c_abi.rs) runs its C program under it and
# requires 0 errors and nothing definitely lost; without it that part skips, saying so.
need_debs "the C ABI test will skip its valgrind run" valgrind

# CUDA compile gate: NVRTC 12.9, the CUDA headers and ptxas from NVIDIA's PyPI wheels,
# unpacked under the omnifuse cache (the CUDA backend looks there for NVRTC; the gate for
# ptxas). No GPU and no system CUDA are involved. A wheel is a zip: unpacking the three
# pinned ones needs no pip environment; skipped when they are already unpacked.
cache_root="${OMNIFUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omnifuse}"
cuda_site="$cache_root/cuda-toolkit/site"
if [ ! -x "$cuda_site/nvidia/cuda_nvcc/bin/ptxas" ] || [ ! -f "$cuda_site/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" ]; then
  echo "fetching the CUDA 12.9 NVRTC, runtime-header and ptxas wheels into $cuda_site"
  wheels="$cache_root/cuda-toolkit/wheels"
  mkdir -p "$wheels" "$cuda_site"
  if python3 -m pip download -q --no-deps --only-binary=:all: -d "$wheels" \
      nvidia-cuda-nvrtc-cu12==12.9.86 nvidia-cuda-runtime-cu12==12.9.79 nvidia-cuda-nvcc-cu12==12.9.86 >/dev/null 2>&1; then
    for w in "$wheels"/*.whl; do python3 -m zipfile -e "$w" "$cuda_site"; done
    chmod +x "$cuda_site/nvidia/cuda_nvcc/bin/ptxas"
  else
    echo "WARNING: could not fetch the CUDA wheels (the CUDA compile gate will skip)"
  fi
fi
