#!/usr/bin/env bash
# Flowgate's sidecar against cedar-agent, the Cedar sidecar, on the same generated scenario
# (benches/src/bin/sidecar_fixture.rs): the same rules, entities and 256 requests, first
# checked to get the same answers from both, then each server loaded with wrk for 10 s at
# 64 connections on loopback, with the share of CPU time the hypervisor stole during each
# run (vm.sh). Needs wrk, curl, python3 and cedar-agent
# (`cargo install cedar-agent`; or set CEDAR_AGENT to its path). FLOWGATE_ONLY=1 times
# Flowgate alone on the same scenario, without cedar-agent. FLOWGATE_ARGS adds options to
# `flowgate serve` and WRK_THREADS sets wrk's threads (default 2), for instance
# FLOWGATE_ARGS="--workers 1" WRK_THREADS=1 to give each side a core.
# Usage: benches/http/cedar_agent.sh [RULES ...]   (default: 10 1000 10000; from the repo root)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=vm.sh
source "$here/vm.sh"
only="${FLOWGATE_ONLY:-}"
agent="${CEDAR_AGENT:-$(command -v cedar-agent || true)}"
[ -n "$only" ] || [ -x "$agent" ] || { echo "cedar-agent not found: cargo install cedar-agent, or set CEDAR_AGENT (or FLOWGATE_ONLY=1)" >&2; exit 2; }
read -r -a flowgate_args <<< "${FLOWGATE_ARGS:-}"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 1000 10000)
cargo build --release -q -p flowgate
cargo build --release -q -p benches --features compare --bin sidecar_fixture
flowgate_port=18182
agent_port=18183
pids=()
trap 'for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done' EXIT

wait_for() { for _ in $(seq 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

# "requests/s p99 steal%" of a 10 s wrk run.
load() {
  local before
  before="$(cpu_ticks)"
  BODIES="$2" wrk "-t${WRK_THREADS:-2}" -c64 -d10s --timeout 30s --latency -s "$here/rotate.lua" "$1" |
    awk '/^ +99%/ {p99=$2} /^Requests\/sec/ {rps=$2} END {printf "%s %s ", rps, p99}'
  echo "$(steal_share "$before" | cut -d' ' -f1)%"
}

printf '| rules | Flowgate decisions/s | p99 | steal | cedar-agent decisions/s | p99 | steal | ratio |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n' > "${RESULTS:=/dev/stdout}"
for rules in "${sizes[@]}"; do
  work="$(mktemp -d)"
  ./target/release/sidecar_fixture "$rules" "$work"
  ./target/release/flowgate serve "$work/flowgate" --listen "127.0.0.1:$flowgate_port" \
    --decision-log "$work/decisions.log" --no-watch "${flowgate_args[@]}" 2>/dev/null &
  pids+=($!)
  wait_for "http://127.0.0.1:$flowgate_port/readyz"
  if [ -n "$only" ]; then
    read -r ours ours_p99 ours_steal < <(load "http://127.0.0.1:$flowgate_port/v1/decide" "$work/flowgate-requests.jsonl")
    printf '| %s | %s | %s | %s | — | — | — | — |\n' "$rules" "$ours" "$ours_p99" "$ours_steal" >> "$RESULTS"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    pids=()
    rm -rf "$work"
    continue
  fi
  "$agent" --addr 127.0.0.1 --port "$agent_port" --policies "$work/cedar-policies.json" \
    --data "$work/cedar-entities.json" >/dev/null 2>&1 &
  pids+=($!)
  wait_for "http://127.0.0.1:$flowgate_port/readyz"
  wait_for "http://127.0.0.1:$agent_port/v1/policies"
  # Both must give the same answers before either is timed.
  python3 - "$work" "$flowgate_port" "$agent_port" <<'PY'
import json, sys, urllib.request
work, flowgate, agent = sys.argv[1], sys.argv[2], sys.argv[3]
def post(port, path, body):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", body.encode(), {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=60))
ours = open(f"{work}/flowgate-requests.jsonl").read().splitlines()
theirs = open(f"{work}/cedar-requests.jsonl").read().splitlines()
allowed = 0
for index, (mine, cedar) in enumerate(list(zip(ours, theirs))[:64]):
    a = post(flowgate, "/v1/decide", mine)["decision"] == "allow"
    b = post(agent, "/v1/is_authorized", cedar)["decision"] == "Allow"
    if a != b:
        sys.exit(f"request {index}: Flowgate says {a}, cedar-agent says {b}")
    allowed += a
print(f"agree on 64 requests ({allowed} allowed)", file=sys.stderr)
PY
  read -r ours ours_p99 ours_steal < <(load "http://127.0.0.1:$flowgate_port/v1/decide" "$work/flowgate-requests.jsonl")
  read -r theirs theirs_p99 theirs_steal < <(load "http://127.0.0.1:$agent_port/v1/is_authorized" "$work/cedar-requests.jsonl")
  ratio="$(python3 -c "print(f'{$ours / max($theirs, 0.001):,.0f}×')")"
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$rules" "$ours" "$ours_p99" "$ours_steal" "$theirs" "$theirs_p99" "$theirs_steal" "$ratio" >> "$RESULTS"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=()
  rm -rf "$work"
done
