#!/usr/bin/env bash
# Memory soak: `flowgate serve` on the example policies under steady wrk load (single
# decisions, 32 connections, decision log to a file rotated at 100 MB) for DURATION seconds
# (default 600), with the server's RSS sampled every 10 s. Reports the median RSS of the
# second and of the last minute, the growth between them, and the peak.
# Usage: [DURATION=600] benches/http/soak.sh [POLICY_DIR]   (from the repository root)
set -euo pipefail
dir="${1:-policies}"
duration="${DURATION:-600}"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=vm.sh
source "$here/vm.sh"
port=18184
logdir="$(mktemp -d)"
cargo build --release -q -p flowgate
./target/release/flowgate serve "$dir" --listen "127.0.0.1:$port" --no-watch \
  --decision-log "$logdir/decisions.log" --log-rotate-bytes 100000000 2>/dev/null &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$logdir"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
echo "start: $(rss) kB"
before="$(cpu_ticks)"
wrk -t1 -c32 -d"${duration}s" --latency -s "$here/decide.lua" "http://127.0.0.1:$port/v1/decide" > "$logdir/wrk.txt" &
load=$!
samples=()
for ((t = 10; t <= duration; t += 10)); do
  sleep 10
  samples+=("$(rss)")
  echo "t=${t}s rss=${samples[-1]} kB"
done
wait $load || true
steal_share "$before"
grep -E "Requests/sec|99%|Socket errors|Non-2xx" "$logdir/wrk.txt" || true
# Single samples catch transient peaks (a write round, a rotation); growth compares the
# median of the second minute with the median of the last minute.
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
count="${#samples[@]}"
warm="$(median "${samples[@]:6:6}")"
warm="${warm:-${samples[0]}}"  # runs shorter than two minutes
last="$(median "${samples[@]:$((count > 6 ? count - 6 : 0))}")"
max="$(printf '%s\n' "${samples[@]}" | sort -n | tail -1)"
# Every minute's median too: one minute's dip or bump moves the growth figure by a few
# percent, where a leak climbs minute after minute.
minutes=()
for ((start = 0; start < count; start += 6)); do
  minutes+=("$(median "${samples[@]:start:6}")")
done
echo "RSS median per minute (kB): ${minutes[*]}"
echo "RSS median in minute 2: $warm kB; in the last minute: $last kB; max: $max kB"
awk -v a="$warm" -v b="$last" 'BEGIN { printf "growth from minute 2 to the last minute: %.1f%%\n", (b - a) * 100 / a }'
