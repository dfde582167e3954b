#!/usr/bin/env bash
# Issue 17's server figure, in one run: Tessera's POSIX append rate (100 per call, 64 writers,
# 1 KiB entries, its default batching; BenchmarkVsTessera/100-per-call/tessera), then
# agentaudit's batched HTTP ingest: `agentaudit serve` on loopback driven by the load command
# (32 connections x 100 events of about 1 KiB per request, each answered once durable). Prints
# both rates and the ratio agentaudit/Tessera. The load generator shares the two cores with the
# server, as in BENCHMARKS.md's server figures. Usage: bench/tessera/server.sh [duration, 15s]
set -euo pipefail
cd "$(dirname "$0")"
duration=${1:-15s}
. ../lib.sh

# The binaries are built in the main module, with its go.mod, as users build them.
(cd ../.. && go build -o "$work/agentaudit" ./cmd/agentaudit && go build -o "$work/agentaudit-load" ./cmd/agentaudit-load)

go test -run '^$' -bench 'VsTessera/100-per-call/tessera$' -benchtime 5s | tee "$work/tessera.txt"
tessera=$(awk '/events\/s/ { for (i = 2; i <= NF; i++) if ($i == "events/s") print $(i-1) }' "$work/tessera.txt" | tail -1)

start "$work/agentaudit" --data "$work/data" serve --listen 127.0.0.1:0

# serve's CPU time around the load.
cpu0=$(cputicks "$srv")
"$work/agentaudit-load" --url "$url" --key-file "$work/data/admin.key" --connections 32 --batch 100 \
	--duration "$duration" | tee "$work/load.txt"
cpu1=$(cputicks "$srv")
agentaudit=$(grep -o '[0-9.]* events/s' "$work/load.txt" | head -1 | cut -d' ' -f1)
events=$(grep -o '[0-9]* events in' "$work/load.txt" | head -1 | cut -d' ' -f1)
if [ "$cpu0" != 0 ] && [ "${events:-0}" -gt 0 ]; then
	awk -v a="$cpu0" -v b="$cpu1" -v e="$events" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "serve used %.1f µs of CPU per event\n", (b - a) / t * 1e6 / e }'
fi

awk -v t="$tessera" -v a="$agentaudit" 'BEGIN {
	printf "server, batched HTTP ingest (32 connections x 100): agentaudit %.0f events/s, tessera %.0f events/s, agentaudit/tessera %.2f\n", a, t, a / t
}'
