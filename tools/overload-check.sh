#!/usr/bin/env bash
# The overload bar: every accepted request gets exactly one response, under overload too.
# Starts `omnifuse serve --no-auth` on a free loopback port, then `omnifuse client overload`:
# the peak rate from a closed loop (32 threads, 5 s), then 3x that rate open-loop for 30 s,
# each request's outcome tallied (200, refused 429/503 with a message, other status, lost),
# the server's own answer count compared (duplicates), its RSS sampled from /proc, and
# normal service checked after. Stops the server with SIGTERM. Exit 0 when the bar is met.
# Builds nothing: takes the binary from $OMNIFUSE_BIN, else target/release/omnifuse.
# Extra arguments go to `omnifuse client overload` (e.g. --seconds 10 --json); server
# settings through $OMNIFUSE_SERVE_ARGS (e.g. "--queue-capacity 64 --max-batch 8").
# Usage: tools/overload-check.sh [overload args...]
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${OMNIFUSE_BIN:-target/release/omnifuse}"
if [ ! -x "$bin" ]; then
  echo "no omnifuse binary at $bin (build it: cargo build --release -p omnifuse-cli)" >&2
  exit 2
fi

log="$(mktemp)"
# shellcheck disable=SC2086 # the serve arguments are words on purpose
"$bin" serve --no-auth --addr 127.0.0.1:0 ${OMNIFUSE_SERVE_ARGS:-} 2>"$log" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT

addr=""
for _ in $(seq 1 100); do
  addr="$(grep -o 'http://[0-9.]*:[0-9]*' "$log" | head -1 || true)"
  [ -n "$addr" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 2; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "the server did not report its address" >&2; cat "$log" >&2; exit 2; }
until "$bin" client --endpoint "$addr" health >/dev/null 2>&1; do
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 2; }
  sleep 0.1
done

echo "server pid $server at $addr" >&2
"$bin" client --endpoint "$addr" overload --server-pid "$server" "$@"
