#!/usr/bin/env bash
# Load test of `flowgate serve` on loopback with wrk (Debian package `wrk`). Bounded: 10 s
# per run, four runs.
#   1. single decisions at 64 connections, the machine split between the sidecar and the
#      load generator (`--workers 1`, `wrk -t1` on a 2-core machine);
#   2. the same with both using every core (default workers, `wrk -t2`): oversubscribed;
#   3. batches of 100 at 16 connections, every core for the sidecar;
#   4. the same batches with the log written around the page cache (--log-direct-io).
# Each run starts once the hypervisor has been quiet for 2 s (vm.sh, wait_for_calm; at most
# CALM_WAIT s, default 120) and prints the share of CPU time it took meanwhile.
# Usage: benches/http/load.sh [POLICY_DIR]   (run from the repository root)
set -euo pipefail
dir="${1:-policies}"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=vm.sh
source "$here/vm.sh"
port=18181
log="$(mktemp)"
server=
cargo build --release -q
start() {
    rm -f "$log"
    ./target/release/flowgate serve "$dir" --listen "127.0.0.1:$port" --decision-log "$log" --no-watch "$@" >/dev/null 2>&1 &
    server=$!
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
}
stop() {
    echo "== server RSS: $(grep VmRSS "/proc/$server/status" | awk '{print $2, $3}')"
    kill -TERM "$server"; wait "$server" 2>/dev/null || true
    echo "== decision-log lines written: $(wc -l < "$log")"
}
trap 'kill -TERM $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "$log"' EXIT

start --workers 1
echo "== single decisions, 64 connections; sidecar --workers 1, wrk -t1"
wait_for_calm
before="$(cpu_ticks)"
wrk -t1 -c64 -d10s --latency -s "$here/decide.lua" "http://127.0.0.1:$port/v1/decide"
steal_share "$before"
stop

start
echo "== single decisions, 64 connections; sidecar on every core, wrk -t2 (oversubscribed)"
wait_for_calm
before="$(cpu_ticks)"
wrk -t2 -c64 -d10s --latency -s "$here/decide.lua" "http://127.0.0.1:$port/v1/decide"
steal_share "$before"
echo "== batches of 100, 16 connections, wrk -t2"
wait_for_calm
before="$(cpu_ticks)"
wrk -t2 -c16 -d10s --latency -s "$here/batch.lua" "http://127.0.0.1:$port/v1/decide/batch"
steal_share "$before"
stop

start --log-direct-io
echo "== batches of 100, 16 connections, wrk -t2, --log-direct-io"
wait_for_calm
before="$(cpu_ticks)"
wrk -t2 -c16 -d10s --latency -s "$here/batch.lua" "http://127.0.0.1:$port/v1/decide/batch"
steal_share "$before"
stop
