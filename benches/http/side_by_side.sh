#!/usr/bin/env bash
# Two builds of `flowgate` compared on a machine whose speed drifts (a shared VM): each
# round runs both, alternating which goes first, so drift falls on both alike. Per build
# and round: single decisions at 64 connections (sidecar `--workers 1`, `wrk -t1`), then
# batches of 100 at 16 connections (default workers, `wrk -t2`), 6 s each. Prints one
# Markdown row per run with the steal share (vm.sh), then each build's medians. Before
# each run it waits for a calm spell (vm.sh, wait_for_calm; CALM_STEAL, CALM_WAIT).
# Usage: benches/http/side_by_side.sh OLD_BINARY NEW_BINARY [ROUNDS]   (from the repository
# root; ROUNDS defaults to 3; BATCH_ARGS adds serve flags to the batch runs, e.g.
# BATCH_ARGS=--log-direct-io)
set -euo pipefail
old="$1" new="$2" rounds="${3:-3}"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=vm.sh
source "$here/vm.sh"
port=18189
work="$(mktemp -d)"
server=
trap 'kill -TERM $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT

# run LABEL BINARY SCRIPT PATH WRK_ARGS SERVE_ARGS: prints "| label | run | decisions/s | p99 | steal |"
run() {
    local label=$1 binary=$2 script=$3 path=$4 wrk_args=$5 serve_args=$6
    rm -f "$work/log"
    wait_for_calm
    # shellcheck disable=SC2086
    "$binary" serve policies --listen "127.0.0.1:$port" --decision-log "$work/log" --no-watch $serve_args \
        >/dev/null 2>&1 &
    server=$!
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
    local before output rate p99 per_call
    before="$(cpu_ticks)"
    # shellcheck disable=SC2086
    output="$(wrk $wrk_args -d6s --latency -s "$here/$script" "http://127.0.0.1:$port$path")"
    per_call=1
    [ "$script" = batch.lua ] && per_call=100
    rate="$(awk -v n="$per_call" '/^Requests\/sec/ {printf "%d", $2 * n}' <<<"$output")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$output")"
    echo "| $label | $script | $rate | $p99 | $(steal_share "$before" | cut -d' ' -f1) % |"
    kill -TERM "$server"; wait "$server" 2>/dev/null || true
    server=
}

echo "| build | run | decisions/s | p99 | steal |"
echo "| --- | --- | ---: | ---: | ---: |"
for round in $(seq "$rounds"); do
    order=("old $old" "new $new")
    [ $((round % 2)) -eq 0 ] && order=("new $new" "old $old")
    for entry in "${order[@]}"; do
        read -r label binary <<<"$entry"
        run "$label" "$binary" decide.lua /v1/decide "-t1 -c64" "--workers 1"
    done
    for entry in "${order[@]}"; do
        read -r label binary <<<"$entry"
        run "$label" "$binary" batch.lua /v1/decide/batch "-t2 -c16" "${BATCH_ARGS:-}"
    done
done | tee "$work/rows"
echo
echo "medians:"
for label in old new; do
    for script in decide.lua batch.lua; do
        mapfile -t rates < <(awk -F'|' -v label="$label" -v script="$script" \
            '$2 ~ " " label " " && $3 ~ script {print $4 + 0}' "$work/rows" | sort -n)
        count=${#rates[@]}
        if [ $((count % 2)) -eq 1 ]; then
            median=${rates[$((count / 2))]}
        else
            median=$(( (rates[count / 2 - 1] + rates[count / 2]) / 2 ))
        fi
        echo "  $label $script: $median decisions/s over $count runs"
    done
done
