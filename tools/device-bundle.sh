#!/usr/bin/env bash
# Builds what tools/device-check.sh runs on a GPU machine (which has no Rust toolchain) into
# the ignored folder device-bundle/: the release binary and the CUDA conformance test
# executable, stripped to fit a 64 MiB transfer. Run here, then carry device-bundle/ along.
# Usage: tools/device-bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
cargo build --release -q -p omnifuse-cli
exe=$(cargo test --release -q -p omnifuse-cuda --test conformance --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "conformance":
        print(m["executable"])')
[ -n "$exe" ] || { echo "could not find the CUDA conformance test executable" >&2; exit 1; }
rm -rf device-bundle && mkdir -p device-bundle
strip -o device-bundle/omnifuse target/release/omnifuse
strip -o device-bundle/cuda-conformance "$exe"
git rev-parse HEAD > device-bundle/COMMIT
du -sh device-bundle/*
