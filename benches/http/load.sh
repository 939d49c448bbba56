#!/usr/bin/env bash
# Load test of `flowgate serve` on loopback with wrk (Debian package `wrk`): single
# decisions at 64 connections, then batches of 100. Bounded: 10 s per run.
# Usage: benches/http/load.sh [POLICY_DIR]   (run from the repository root)
set -euo pipefail
dir="${1:-policies}"
here="$(cd "$(dirname "$0")" && pwd)"
port=18181
log="$(mktemp)"
cargo build --release -q
./target/release/flowgate serve "$dir" --listen "127.0.0.1:$port" --decision-log "$log" --no-watch 2>/dev/null &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
echo "== single decisions, 64 connections, 2 threads"
wrk -t2 -c64 -d10s --latency -s "$here/decide.lua" "http://127.0.0.1:$port/v1/decide"
echo "== batches of 100, 16 connections, 2 threads"
wrk -t2 -c16 -d10s --latency -s "$here/batch.lua" "http://127.0.0.1:$port/v1/decide/batch"
echo "== server RSS after the runs"
grep VmRSS "/proc/$server/status"
echo "== decision-log lines written: $(wc -l < "$log")"
kill -TERM $server; wait $server 2>/dev/null || true
rm -f "$log"
# The same batches with the log written around the page cache (--log-direct-io).
./target/release/flowgate serve "$dir" --listen "127.0.0.1:$port" --decision-log "$log" --log-direct-io --no-watch 2>/dev/null &
server=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
echo "== batches of 100, 16 connections, 2 threads, --log-direct-io"
wrk -t2 -c16 -d10s --latency -s "$here/batch.lua" "http://127.0.0.1:$port/v1/decide/batch"
echo "== decision-log lines written: $(wc -l < "$log")"
