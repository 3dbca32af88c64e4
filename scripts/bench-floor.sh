#!/usr/bin/env bash
# The floor under issue #4's assign target: liftlab against servers that do the least a durable
# assign needs (scripts/floor: actix-web, JSON, a group-committed append and fdatasync, nothing
# else), each measured as bench-http.sh measures liftlab: /healthz, then POST assign with a fresh
# unit per request, 2 wrk threads and 64 connections, on the same server in the same run.
#
# Usage: scripts/bench-floor.sh       Env: ROUNDS (default 3), DURATION (seconds a run, default 8),
#        KINDS (default "thread thread-nosync per-worker inline liftlab"; see scripts/floor).
# The kinds alternate within each round, since this host's speed drifts from minute to minute.
# Needs wrk and python3. Every request goes to 127.0.0.1 and every server is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${ROUNDS:-3}"
duration="${DURATION:-8}"
kinds="${KINDS:-thread thread-nosync per-worker inline liftlab}"
command -v wrk >/dev/null || { echo "bench-floor.sh needs wrk (apt-get install wrk)"; exit 2; }

target="${CARGO_TARGET_DIR:-target}"
cargo build -q --release --bin liftlab
CARGO_TARGET_DIR="$target/floor" cargo build -q --release --manifest-path scripts/floor/Cargo.toml
liftlab="$target/release/liftlab"
floor="$target/floor/release/liftlab-floor"

work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz="$(getconf CLK_TCK)"
echo "cores: $(nproc); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| round | server | /healthz req/s | assign req/s | assign/healthz | assign p99 | server CPU per assign |"
echo "|---|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
  for kind in $kinds; do
    data="$work/data-$round-$kind"
    if [ "$kind" = liftlab ]; then
      RUST_LOG=warn "$liftlab" serve --addr 127.0.0.1:0 --data "$data" --workers 2 >"$work/out" 2>"$work/err" &
      path=/v1/experiments/bench-fixed/assign
    else
      "$floor" "$data" "$kind" >"$work/out" 2>"$work/err" &
      path=/assign
    fi
    pid=$!
    for _ in $(seq 1 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
    base="$(sed -n 's/^listening on //p' "$work/out" | head -n1)"
    [ -n "$base" ] || { echo "$kind did not start:"; cat "$work/err"; exit 1; }
    if [ "$kind" = liftlab ]; then
      curl -sf -X POST -H 'content-type: application/json' "$base/v1/experiments" --data \
        '{"key":"bench-fixed","arms":[{"key":"human","role":"baseline"},{"key":"ai","role":"treatment"}],
          "allocation":{"policy":"fixed","weights":{"human":0.5,"ai":0.5}},
          "metrics":[{"key":"minutes","kind":"duration","direction":"decrease","role":"primary"}]}' >/dev/null
      curl -sf -X POST -H 'content-type: application/json' --data '{}' "$base/v1/experiments/bench-fixed/start" >/dev/null
    fi
    healthz="$(wrk -t2 -c64 -d"${duration}s" "$base/healthz" | sed -n 's/^Requests\/sec: *//p')"
    before="$(ticks)"
    wrk --latency -t2 -c64 -d"${duration}s" -s scripts/new-units.lua "$base$path" >"$work/assign.txt"
    after="$(ticks)"
    grep -q "Non-2xx" "$work/assign.txt" && { echo "$kind answered non-2xx:"; cat "$work/assign.txt"; exit 1; }
    rate="$(sed -n 's/^Requests\/sec: *//p' "$work/assign.txt")"
    requests="$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$work/assign.txt")"
    p99="$(awk '$1 == "99%" {print $2}' "$work/assign.txt")"
    python3 -c "print(f'| $round | $kind | {$healthz:,.0f} | {$rate:,.0f} | {$rate / $healthz:.0%} | $p99 | {($after - $before) / $hz / $requests * 1e6:.1f} µs |')"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    rm -rf "$data"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
