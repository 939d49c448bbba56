# Sourced by the load scripts: how much of the run the hypervisor took away.
#
# On a VM, "steal" is time a virtual CPU was ready to run but the host ran something else.
# It comes in pauses of several milliseconds, which land directly in any tail latency
# measured here, so every run prints the share of CPU time stolen while it ran.

# Prints the machine's steal and total CPU ticks, for steal_share.
cpu_ticks() {
    awk '/^cpu / { total = 0; for (i = 2; i <= NF; i++) total += $i; print $9, total }' /proc/stat
}

# steal_share "$(cpu_ticks)" — the share of CPU time stolen since that reading.
steal_share() {
    local before="$1"
    echo "$before $(cpu_ticks)" | awk '{ d = $4 - $2; printf "%.1f %% of CPU time stolen by the hypervisor\n", (d > 0 ? 100 * ($3 - $1) / d : 0) }'
}

# wait_for_calm — on a shared VM, waits (up to CALM_WAIT seconds, default 120) until the
# hypervisor steals less than CALM_STEAL percent (default 1) over a 2-second window, so
# runs compared with one another start alike. Prints how long it waited and the last
# window's share; runs anyway when the wait runs out.
wait_for_calm() {
    local limit="${CALM_STEAL:-1}" wait="${CALM_WAIT:-120}" waited=0 before share
    while :; do
        before="$(cpu_ticks)"
        sleep 2
        waited=$((waited + 2))
        share="$(steal_share "$before" | cut -d' ' -f1)"
        if awk -v share="$share" -v limit="$limit" 'BEGIN { exit !(share < limit) }' || [ "$waited" -ge "$wait" ]; then
            echo "waited ${waited} s for steal under ${limit} %: last window ${share} %" >&2
            return
        fi
    done
}
