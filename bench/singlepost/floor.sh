#!/usr/bin/env bash
# Issue 17's single-post figure and its floor, in one run. First `agentaudit serve` on loopback,
# driven by the load command at 5,000 single-event posts a second over 64 connections, each
# answered once durable: p50/p99 and serve's CPU per event (from /proc). Then burnserver, which
# only spends a fixed CPU time per request and writes nothing, under the same load at 100 µs,
# 170 µs and serve's measured CPU per event: what p99 a server of that cost per request reaches
# on this machine, with the load command on the same cores. Usage: bench/singlepost/floor.sh [duration, 10s]
set -euo pipefail
cd "$(dirname "$0")"
duration=${1:-10s}
. ../lib.sh

(cd ../.. && go build -o "$work/agentaudit" ./cmd/agentaudit && go build -o "$work/agentaudit-load" ./cmd/agentaudit-load &&
	go build -o "$work/burnserver" ./bench/singlepost/burnserver)

load() { "$work/agentaudit-load" --url "$url" --key-file "$1" --connections 64 --batch 1 --rate 5000 --duration "$duration"; }

start "$work/agentaudit" --data "$work/data" serve --listen 127.0.0.1:0
cpu0=$(cputicks "$srv")
load "$work/data/admin.key" | tee "$work/load.txt"
cpu1=$(cputicks "$srv")
stop
events=$(grep -o '[0-9]* events in' "$work/load.txt" | cut -d' ' -f1)
perevent=$(awk -v a="$cpu0" -v b="$cpu1" -v e="$events" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%d", (b - a) / t * 1e6 / e }')
echo "serve: $perevent µs of CPU per single-post event"

echo x >"$work/burn.key"
for burn in 100 170 "$perevent"; do
	start "$work/burnserver" -burn "${burn}us"
	printf 'burnserver -burn %sus: ' "$burn"
	load "$work/burn.key"
	stop
done
