#!/usr/bin/env bash
# HTTP benchmark of `liftlab serve` on loopback with wrk: /healthz, POST assign on a fixed and a
# Thompson experiment (a fresh unit id per request, so every answer is a durable write) and for
# returning units (answered from the stored assignment), and outcome ingestion in JSON batches
# of 500 and as NDJSON streams of 500 lines.
#
# Usage: scripts/bench-http.sh        Env: DURATION (seconds per run, default 10),
#        CONNECTIONS (assign and healthz, default 64), THREADS (wrk threads, default 2),
#        BATCH_CONNECTIONS (outcome runs, default 8), WORKERS (server workers, default 2),
#        RUNS (the runs to make, space-separated; default all six, in the order below),
#        STORE (a postgres:// URL: serve on PostgreSQL instead of a fresh data directory; the
#        database must be empty), REPLICAS (with STORE: 2 starts a second server on the same
#        database and runs every run against both at once, one wrk per replica with the
#        run's connections each; requests/s is then the sum, latencies are replica 1's).
# Needs wrk (Debian package `wrk`) and python3. Every request goes to 127.0.0.1, every run is
# bounded by wrk's -d, and the server is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${DURATION:-10}"
conns="${CONNECTIONS:-64}"
threads="${THREADS:-2}"
batch_conns="${BATCH_CONNECTIONS:-8}"
workers="${WORKERS:-2}"
all_runs="healthz assign-fixed assign-thompson assign-returning outcomes-json outcomes-ndjson"
runs="${RUNS:-$all_runs}"
units=2000
command -v wrk >/dev/null || { echo "bench-http.sh needs wrk (apt-get install wrk)"; exit 2; }

cargo build -q --release --bin liftlab
bin="${CARGO_TARGET_DIR:-target}/release/liftlab"

work="$(mktemp -d)"
server_pid=""
server2_pid=""
cleanup() {
  if [ -n "$server2_pid" ]; then kill "$server2_pid" 2>/dev/null || true; wait "$server2_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

store_args=(--data "$work/data")
[ -n "${STORE:-}" ] && store_args=(--store "$STORE")
RUST_LOG=warn "$bin" serve --addr 127.0.0.1:0 "${store_args[@]}" --workers "$workers" \
  >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/stdout" 2>/dev/null && break
  sleep 0.1
done
base="$(sed -n 's/^listening on //p' "$work/stdout" | head -n1)"
[ -n "$base" ] || { echo "the server did not start:"; cat "$work/stderr"; exit 1; }
base2=""
if [ "${REPLICAS:-1}" = 2 ] && [ -n "${STORE:-}" ]; then
  RUST_LOG=warn "$bin" serve --addr 127.0.0.1:0 "${store_args[@]}" --workers "$workers" \
    >"$work/stdout2" 2>"$work/stderr2" &
  server2_pid=$!
  for _ in $(seq 1 100); do
    grep -q "listening on" "$work/stdout2" 2>/dev/null && break
    sleep 0.1
  done
  base2="$(sed -n 's/^listening on //p' "$work/stdout2" | head -n1)"
  [ -n "$base2" ] || { echo "the second replica did not start:"; cat "$work/stderr2"; exit 1; }
fi

post() { curl -sf -X POST -H 'content-type: application/json' --data "$2" "$base$1" >/dev/null; }
post /v1/experiments '{"key":"bench-fixed","arms":[{"key":"human","role":"baseline"},{"key":"ai","role":"treatment"}],
  "allocation":{"policy":"fixed","weights":{"human":0.5,"ai":0.5}},
  "metrics":[{"key":"minutes","kind":"duration","direction":"decrease","role":"primary"},
             {"key":"escalated","kind":"binary","direction":"decrease","role":"guardrail"}]}'
post /v1/experiments '{"key":"bench-bandit","arms":[{"key":"human","role":"baseline"},{"key":"model-a","role":"treatment"},{"key":"model-b","role":"treatment"}],
  "allocation":{"policy":"thompson","reward":"resolved","warmup":100,"update_every":50},
  "metrics":[{"key":"resolved","kind":"binary","direction":"increase","role":"primary"}]}'
post /v1/experiments/bench-fixed/start '{}'
post /v1/experiments/bench-bandit/start '{}'

# Units whose tasks the outcome runs report on.
python3 - "$base" "$units" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
base, units = sys.argv[1], int(sys.argv[2])
def assign(i):
    req = urllib.request.Request(f"{base}/v1/experiments/bench-fixed/assign",
        data=json.dumps({"unit_id": f"o-{i}"}).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
with ThreadPoolExecutor(16) as pool:
    list(pool.map(assign, range(units)))
PY

# Returning units: the 2,000 units assigned above, answered from their stored assignment.
cat >"$work/returning.lua" <<LUA
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  return wrk.format(nil, wrk.path, nil, '{"unit_id":"o-' .. (counter % $units) .. '"}')
end
LUA

cat >"$work/batch.lua" <<LUA
local n = 0
function setup(thread) n = n + 1; thread:set("tid", n) end
local counter = 0
local tag = os.getenv("BENCH_RUN") or "run"
local units = $units
local ndjson = os.getenv("BENCH_NDJSON") == "1"
wrk.method = "POST"
wrk.headers["Content-Type"] = ndjson and "application/x-ndjson" or "application/json"
request = function()
  counter = counter + 1
  local events = {}
  for j = 1, 500 do
    events[j] = '{"event_id":"b-' .. tag .. '-' .. tid .. '-' .. counter .. '-' .. j ..
      '","experiment":"bench-fixed","task_id":"o-' .. ((counter * 500 + j) % units) ..
      '","metrics":{"minutes":' .. (j % 40 + 0.5) .. ',"escalated":' .. (j % 7 == 0 and "true" or "false") .. '}}'
  end
  local body
  if ndjson then body = table.concat(events, "\n") .. "\n"
  else body = '{"events":[' .. table.concat(events, ",") .. ']}' end
  return wrk.format(nil, wrk.path, nil, body)
end
LUA

run() { # name, then wrk arguments
  local name="$1"; shift
  case " $runs " in *" $name "*) ;; *) return 0 ;; esac
  echo "== $name"
  local before; before="$(cpu_ticks)"
  if [ -n "$base2" ]; then
    local args=("$@"); local url="${args[-1]}"; unset 'args[-1]'
    BENCH_RUN="${BENCH_RUN:-run}-r2" wrk --latency -t"$threads" -d"${duration}s" "${args[@]}" "${url/$base/$base2}" >"$work/$name.2.txt" &
    local second=$!
  fi
  wrk --latency -t"$threads" -d"${duration}s" "$@" | tee "$work/$name.txt" |
    grep -E "Requests/sec|Latency  |^ +(50|99)%|Non-2xx|Socket errors|requests in" || true
  if [ -n "$base2" ]; then wait "$second"; grep -E "Requests/sec|Non-2xx" "$work/$name.2.txt" || true; fi
  echo $(( $(cpu_ticks) - before )) >"$work/$name.cpu"
}
# The server process's user + system CPU time so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
hz="$(getconf CLK_TCK)"

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); cores: $(nproc)"
run healthz -c"$conns" "$base/healthz"
run assign-fixed -c"$conns" -s scripts/new-units.lua "$base/v1/experiments/bench-fixed/assign"
run assign-thompson -c"$conns" -s scripts/new-units.lua "$base/v1/experiments/bench-bandit/assign"
run assign-returning -c"$conns" -s "$work/returning.lua" "$base/v1/experiments/bench-fixed/assign"
BENCH_RUN=json run outcomes-json -c"$batch_conns" -s "$work/batch.lua" "$base/v1/outcomes"
BENCH_RUN=ndjson BENCH_NDJSON=1 run outcomes-ndjson -c"$batch_conns" -s "$work/batch.lua" "$base/v1/outcomes"

rate() {
  local files=("$work/$1.txt")
  if [ -f "$work/$1.2.txt" ]; then files+=("$work/$1.2.txt"); fi
  sed -n 's/^Requests\/sec: *//p' "${files[@]}" | awk '{s += $1} END {printf "%.2f", s}'
}
p99() { awk '$1 == "99%" {print $2}' "$work/$1.txt"; }
non2xx() { sed -n 's/.*Non-2xx or 3xx responses: *//p' "$work/$1.txt" | grep . || echo 0; }
echo
echo "| run | requests/s | events/s | p50 | p99 | non-2xx | server CPU per request |"
echo "|---|---|---|---|---|---|---|"
for name in $runs; do
  r="$(rate "$name")"
  events="—"
  case "$name" in outcomes-*) events="$(python3 -c "print(f'{float(\"$r\") * 500:,.0f}')")" ;; esac
  p50="$(awk '$1 == "50%" {print $2}' "$work/$name.txt")"
  requests="$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$work/$name.txt")"
  cpu="$(python3 -c "print(f'{$(cat "$work/$name.cpu") / $hz / max($requests, 1) * 1e6:,.0f} µs')")"
  echo "| $name | $r | $events | $p50 | $(p99 "$name") | $(non2xx "$name") | $cpu |"
done
if [ "$runs" = "$all_runs" ]; then
  python3 - "$(rate healthz)" "$(rate assign-fixed)" "$(rate assign-thompson)" <<'PY'
import sys
h, f, t = map(float, sys.argv[1:])
print(f"\nassign/healthz: fixed {f / h:.0%}, thompson {t / h:.0%}")
PY
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
metrics="$(curl -sf "$base/metrics")"
echo "store writes (count, seconds): $(echo "$metrics" | grep -E '^liftlab_store_write_seconds_(count|sum)' | tr '\n' ' ')"
