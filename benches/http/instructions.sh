#!/usr/bin/env bash
# Instructions the sidecar executes per decision in user space, counted by valgrind's
# cachegrind (Debian package `valgrind`). Unlike requests per second on a shared or
# virtual machine, the count does not change with the machine's speed from one minute to
# the next, so it shows whether a change made the hot path cheaper. Each figure is the
# difference between a run that answers N calls and one that answers none, divided by the
# decisions made, so start-up cost drops out. Kernel time (sockets, the log file) is not
# counted. Bounded: about a minute.
# Usage: benches/http/instructions.sh [BINARY]   (run from the repository root)
set -euo pipefail
bin="${1:-./target/release/flowgate}"
[ "$#" -ge 1 ] || cargo build --release -q
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
port=18183
# The same request bodies as load.sh sends.
sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$here/decide.lua" > "$work/one.json"
{
    printf '{"requests": ['
    for i in $(seq 100); do
        [ "$i" -gt 1 ] && printf ','
        cat "$work/one.json" | tr -d '\n'
    done
    printf ']}'
} > "$work/batch.json"

# Instructions of one server run that answers `calls` POSTs of `body` to `path`.
count() {
    local path=$1 body=$2 calls=$3
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        "$bin" serve policies --listen "127.0.0.1:$port" --decision-log "$work/log" --no-watch \
        >/dev/null 2>"$work/valgrind" &
    local server=$!
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
    if [ "$calls" -gt 0 ]; then
        local args=()
        for _ in $(seq "$calls"); do
            # `Expect:` off: curl asks for `100 Continue` before bodies over a kilobyte,
            # which load generators and most HTTP clients never do.
            args+=(--next -sf -o /dev/null -H 'Content-Type: application/json' -H 'Expect:' --data-binary "@$body" "http://127.0.0.1:$port$path")
        done
        curl "${args[@]}"
    fi
    kill -TERM "$server"; wait "$server" || true
    sed -n 's/.*I *refs: *//p' "$work/valgrind" | tr -d ','
}

idle=$(count /v1/decide "$work/one.json" 0)
single=$(count /v1/decide "$work/one.json" 2000)
batch=$(count /v1/decide/batch "$work/batch.json" 200)
echo "single POST /v1/decide: $(( (single - idle) / 2000 )) instructions per decision (2,000 calls)"
echo "POST /v1/decide/batch of 100: $(( (batch - idle) / 20000 )) instructions per decision (200 calls)"
