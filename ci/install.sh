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
