#!/usr/bin/env bash
# Latency at a fixed rate: the generator in benches/src/bin/http_rate.rs sends RATE single
# decisions a second (default 50,000) over 64 keep-alive connections for 10 s after a 1 s
# warm-up, and times each answer from when its request was due, so stalls count in full
# (see the generator's doc comment). Two runs: the sidecar on one worker, then on its
# default (one per CPU). If nginx is installed, the same schedule then goes to nginx
# answering a constant from one worker: the floor this machine sets. Each run starts once
# the hypervisor has been quiet for 2 s (vm.sh, wait_for_calm) and prints the share of CPU
# time it took meanwhile.
# Usage: [RATE=50000] benches/http/rate.sh [POLICY_DIR]   (run from the repository root)
set -euo pipefail
dir="${1:-policies}"
rate="${RATE:-50000}"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=vm.sh
source "$here/vm.sh"
port=18187
work="$(mktemp -d)"
server=
cargo build --release -q -p flowgate
cargo build --release -q -p benches --features load --bin http_rate
trap 'kill -TERM $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
body="$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$here/decide.lua")"

# measure TITLE READY_PATH: waits until the server answers, then sends the schedule.
measure() {
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port$2" >/dev/null && break; sleep 0.1; done
  echo "== $1"
  local before
  wait_for_calm
  before="$(cpu_ticks)"
  ./target/release/http_rate "127.0.0.1:$port" /v1/decide "$body" "$rate" 64 10
  steal_share "$before"
}

for workers in 1 default; do
  args=()
  [ "$workers" = default ] || args=(--workers "$workers")
  ./target/release/flowgate serve "$dir" --listen "127.0.0.1:$port" "${args[@]}" \
    --decision-log "$work/decisions.log" --no-watch >/dev/null 2>&1 &
  server=$!
  measure "flowgate, workers: $workers; $rate single decisions/s, 64 connections" /readyz
  kill -TERM "$server"; wait "$server" 2>/dev/null || true
  echo "decision-log lines written: $(wc -l < "$work/decisions.log")"
  rm -f "$work/decisions.log"
done

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "(nginx not installed: no reference run)"
  exit 0
fi
cat > "$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000000;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  server { listen 127.0.0.1:$port; location / { return 200 '{"decision":"allow"}'; } }
}
EOF
"$(command -v nginx || echo /usr/sbin/nginx)" -c "$work/nginx.conf" -p "$work" &
server=$!
measure "nginx answering a constant (one worker): the same schedule" /
