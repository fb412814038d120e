#!/usr/bin/env bash
# Prints the f32 GEMM figures quoted in reports: omnifuse's fast CPU tier next to the gemm
# crate and matrixmultiply at 1024³ and 2048³ on all cores, in the same process per line.
# Usage: tools/gemm-figures.sh [extra `omnifuse kernels` flags]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p omnifuse-cli
bin=target/release/omnifuse
"$bin" info | sed -n '/^device/,/^$/p'
for n in 1024 2048; do
  for peer in gemm matrixmultiply; do
    "$bin" kernels --op gemm --dtype f32 --m "$n" --n "$n" --k "$n" --peer "$peer" "$@"
    echo
  done
done
