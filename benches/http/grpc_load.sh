#!/usr/bin/env bash
# Load test of Envoy `ext_authz` over gRPC: `flowgate serve --grpc-listen` on loopback with
# the example policies and the decision log to a file, driven for 10 s by the generator in
# benches/src/bin/grpc_load.rs (64 callers on 4 HTTP/2 connections, like Envoy's workers),
# started once the hypervisor has been quiet for 2 s (vm.sh, wait_for_calm).
# Usage: benches/http/grpc_load.sh [POLICY_DIR]   (run from the repository root)
set -euo pipefail
# shellcheck source=vm.sh
source "$(dirname "$0")/vm.sh"
dir="${1:-policies}"
port=18185
log="$(mktemp)"
cargo build --release -q -p flowgate
cargo build --release -q -p benches --features load --bin grpc_load
./target/release/flowgate serve "$dir" --listen 127.0.0.1:18186 --grpc-listen "127.0.0.1:$port" \
  --fixed-host stg-af-worker-01 --trusted-peer 127.0.0.1 --decision-log "$log" --no-watch 2>/dev/null &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:18186/readyz" >/dev/null && break; sleep 0.1; done
wait_for_calm
before="$(cpu_ticks)"
./target/release/grpc_load "127.0.0.1:$port" 64 10
steal_share "$before"
echo "server RSS: $(awk '/VmRSS/ {print $2}' "/proc/$server/status") kB; decision-log lines: $(wc -l < "$log")"
