#!/usr/bin/env bash
# Installs what building and testing omnifuse needs, only where it is missing, so running it
# twice does nothing the second time. Today: the Rust components rustfmt and clippy.
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
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "note: apt-get not found; not installing ${missing[*]} (the OpenCL conformance will skip)"
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "note: not root and no sudo; not installing ${missing[*]} (the OpenCL conformance will skip)"
      return 0
    fi
  fi
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
    || { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; } \
    || echo "WARNING: could not install ${missing[*]}; the OpenCL conformance will skip instead of running on PoCL"
}
need_debs pocl-opencl-icd ocl-icd-opencl-dev clinfo
