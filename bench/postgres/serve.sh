#!/bin/bash
# serve.sh: durable ingest through `agentaudit serve`, SQLite and PostgreSQL side by side: for each
# configuration a fresh data directory (and database), `init`, a writer key, n serve processes
# on one database sharing the keys (--purge-every 0 on all but the first), then the load command:
# 32 connections x batches of 100 of its ~1 KiB event, 10 s. Each PostgreSQL log is verified
# afterwards.
# usage: bench/postgres/serve.sh PGURL ROUND CONFIG...
#   PGURL   a PostgreSQL server URL whose user may create databases (postgres://postgres@127.0.0.1:5432)
#   CONFIG  sqlite, pg1, pg2, pg3 (instances), each optionally :BINARY (default $AA)
# Binaries: AA=agentaudit (go build -o ... ./cmd/agentaudit), LOAD=agentaudit-load.
PGURL=$1; R=$2; shift 2
AA_DEFAULT=${AA:-agentaudit}; LOAD=${LOAD:-agentaudit-load}
W=${TMPDIR:-/tmp}/agentaudit-serve-bench/r$R; rm -rf "$W"; mkdir -p "$W"
for spec in "$@"; do
  c=${spec%%:*}; AA=$AA_DEFAULT; [ "$spec" != "$c" ] && AA=${spec#*:}
  n=1; case $c in pg2) n=2;; pg3) n=3;; esac
  name=$c-$(basename "$AA"); D=$W/$name; STORE=(); URL=
  if [ "$c" != sqlite ]; then
    DB=bench_r${R}_${name//[^a-z0-9]/_}
    psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" 2>/dev/null
    URL="$PGURL/$DB?sslmode=disable"; STORE=(--store "$URL")
  fi
  "$AA" --data "$D" "${STORE[@]}" init >/dev/null 2>&1
  "$AA" --data "$D" keys create --role writer --name load 2>/dev/null | tail -1 > "$W/key-$name"
  PIDS=(); URLS=
  for i in $(seq 1 $n); do
    DI=$D; [ $i -gt 1 ] && { DI=$D-$i; mkdir -p "$DI"; cp "$D"/*.key "$D"/apikeys.json "$DI"/; }
    PE=(); [ $i -gt 1 ] && PE=(--purge-every 0)
    port=$((18700 + i))
    "$AA" --data "$DI" "${STORE[@]}" serve --listen 127.0.0.1:$port "${PE[@]}" 2>"$DI.log" & PIDS+=($!)
    URLS="$URLS${URLS:+,}http://127.0.0.1:$port"
  done
  for i in $(seq 1 $n); do  # every instance listening before the load starts
    DI=$D; [ $i -gt 1 ] && DI=$D-$i
    for t in $(seq 1 600); do grep -q "listening on" "$DI.log" && break; sleep 0.1; done
  done
  sleep 1
  echo "round $R $name (load $(cut -d' ' -f1 /proc/loadavg)): $("$LOAD" --url "$URLS" --key-file "$W/key-$name" --connections 32 --batch 100 --duration 10s 2>&1 | tr '\n' ' ')"
  kill "${PIDS[@]}"; wait "${PIDS[@]}" 2>/dev/null
  if [ -n "$URL" ]; then "$AA" --data "$D" "${STORE[@]}" verify >/dev/null 2>&1 && echo "  verify ok" || echo "  VERIFY FAILED"; fi
done
