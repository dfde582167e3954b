#!/usr/bin/env bash
# Issue 17's single-post figure, as CPU: `agentaudit serve` on loopback under the load command at
# 5,000 single-event posts a second (64 connections), with serve's CPU time per acknowledged
# event (user + system, from /proc, around the load) beside the rate and latencies. On a machine
# shared with other work the rate and the p99 move with everyone's disk and CPU use; CPU per event
# moves less, and two binaries run alternately (a fresh data directory each run) compare best
# within one invocation.
# Usage: bench/singlepost/cpu.sh [-r rounds] [-d duration] AGENTAUDIT [AGENTAUDIT...]
# (serve binaries, e.g. built from two trees with `go build -o /tmp/x/agentaudit ./cmd/agentaudit`)
set -euo pipefail
rounds=3 duration=10s
while getopts r:d: o; do
	case $o in
	r) rounds=$OPTARG ;;
	d) duration=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-r rounds] [-d duration] AGENTAUDIT..." >&2; exit 2; }
. "$(dirname "$0")/../lib.sh"
(cd "$(dirname "$0")/../.." && go build -o "$work/agentaudit-load" ./cmd/agentaudit-load)
for round in $(seq "$rounds"); do
	for bin in "$@"; do
		rm -rf "$work/data"
		start "$bin" --data "$work/data" serve --listen 127.0.0.1:0 --purge-every 0
		cpu0=$(cputicks "$srv")
		"$work/agentaudit-load" --url "$url" --key-file "$work/data/admin.key" --connections 64 --batch 1 \
			--rate 5000 --duration "$duration" >"$work/load.txt"
		cpu1=$(cputicks "$srv")
		stop
		events=$(grep -o '[0-9]* events in' "$work/load.txt" | head -1 | cut -d' ' -f1)
		awk -v r="$round" -v b="$bin" -v a="$cpu0" -v z="$cpu1" -v e="$events" -v t="$(getconf CLK_TCK)" \
			-v l="$(cat "$work/load.txt")" 'BEGIN { printf "round %d %s: %s; serve used %.0f µs of CPU per event\n", r, b, l, (z - a) / t * 1e6 / e }'
	done
done
