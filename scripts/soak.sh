#!/usr/bin/env bash
# Soak test: mixed assign/outcome load at half the measured maximum throughput, on loopback,
# for SOAK_MINUTES one-minute wrk runs; reports per minute the rate, p50/p99 latency, non-2xx
# answers, the server's RSS and anonymous RSS (from /proc), the data directory's size and the
# machine's 1-minute load average, then the sled growth per million recorded writes, and
# finally the RSS of a server restarted on the same data before it serves a request (what
# sled's recovery alone holds) and after it walked the whole audit chain.
#
# Usage: scripts/soak.sh            Env: SOAK_MINUTES (default 10), MAX_SECONDS (default 30,
#        the maximum-throughput probe), CONNECTIONS (default 16), PROFILE (release|debug,
#        default release), SERVE_ARGS (extra `liftlab serve` flags, e.g. "--cache-size 64MiB"),
#        SOAK_LOG (default: a new temp file, named at the end).
# Needs wrk. Every request goes to 127.0.0.1 and every run is bounded by wrk's -d.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes="${SOAK_MINUTES:-10}"
probe="${MAX_SECONDS:-30}"
conns="${CONNECTIONS:-16}"
profile="${PROFILE:-release}"
serve_args="${SERVE_ARGS:-}"
command -v wrk >/dev/null || { echo "soak.sh needs wrk (apt-get install wrk)"; exit 2; }

if [ "$profile" = release ]; then
  cargo build -q -j1 --release --bin liftlab
else
  cargo build -q -j1 --bin liftlab
fi
bin="${CARGO_TARGET_DIR:-target}/$profile/liftlab"

work="$(mktemp -d)"
log="${SOAK_LOG:-$(mktemp -t liftlab-soak.XXXXXX)}"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# serve: starts the server on $work/data and sets $server_pid and $base.
serve() {
  : >"$work/stdout"
  # shellcheck disable=SC2086 # SERVE_ARGS is a list of flags.
  "$bin" serve --addr 127.0.0.1:0 --data "$work/data" $serve_args >"$work/stdout" 2>>"$work/stderr" &
  server_pid=$!
  for _ in $(seq 1 600); do
    grep -q "listening on" "$work/stdout" 2>/dev/null && break
    sleep 0.1
  done
  base="$(sed -n 's/^listening on //p' "$work/stdout" | head -n1)"
  [ -n "$base" ] || { echo "the server did not start:"; cat "$work/stderr"; exit 1; }
}
serve

spec='{"key":"soak","arms":[{"key":"human","role":"baseline"},{"key":"ai","role":"treatment"}],
 "allocation":{"policy":"fixed","weights":{"human":0.5,"ai":0.5}},
 "metrics":[{"key":"minutes","kind":"duration","direction":"decrease","role":"primary"},
            {"key":"escalated","kind":"binary","direction":"decrease","role":"guardrail"}]}'
curl -sf -X POST "$base/v1/experiments" -H 'Content-Type: application/json' -d "$spec" >/dev/null
curl -sf -X POST "$base/v1/experiments/soak/start" >/dev/null

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status"; }
anon_kib() { awk '/^RssAnon/ {print $2}' "/proc/$server_pid/status"; }
load1() { cut -d' ' -f1 /proc/loadavg; }
data_bytes() { du -sb "$work/data" | awk '{print $1}'; }
field() { awk -v k="$1" '$1 == k {print $2}'; }

echo "# liftlab soak $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, profile $profile, serve flags: ${serve_args:-none}" | tee "$log"
echo "probing the maximum for ${probe}s with $conns connections" | tee -a "$log"
wrk -t2 -c"$conns" -d"${probe}s" --latency -s scripts/soak.lua "$base" -- probe 0 >"$work/probe.txt"
max_rps="$(awk '/^Requests\/sec/ {print int($2)}' "$work/probe.txt")"
probe_non2xx="$(awk '/Non-2xx/ {print $5}' "$work/probe.txt")"
echo "maximum: $max_rps req/s (non-2xx: ${probe_non2xx:-0})" | tee -a "$log"
target=$(( max_rps / 2 ))
# Each connection waits `delay` ms between requests: conns * 1000 / delay ≈ target req/s.
delay=$(( conns * 1000 / (target > 0 ? target : 1) ))
[ "$delay" -ge 1 ] || delay=1
echo "soak: target $target req/s (delay ${delay} ms per connection) for $minutes min" | tee -a "$log"

start_rss="$(rss_kib)"; start_bytes="$(data_bytes)"
echo "start: RSS ${start_rss} KiB (anonymous $(anon_kib) KiB), data ${start_bytes} B, load $(cat /proc/loadavg)" | tee -a "$log"
printf "%-6s %10s %10s %10s %8s %10s %10s %12s %6s\n" minute req/s p50 p99 non2xx rss_kib anon_kib data_bytes load1 | tee -a "$log"
total=0; errors=0
for m in $(seq 1 "$minutes"); do
  wrk -t2 -c"$conns" -d60s --latency -s scripts/soak.lua "$base" -- "m$m" "$delay" >"$work/m.txt"
  rps="$(awk '/^Requests\/sec/ {print $2}' "$work/m.txt")"
  reqs="$(awk '/requests in/ {print $1}' "$work/m.txt")"
  p50="$(awk '$1 == "50%" {print $2}' "$work/m.txt")"
  p99="$(awk '$1 == "99%" {print $2}' "$work/m.txt")"
  non2xx="$(awk '/Non-2xx/ {print $5}' "$work/m.txt")"; non2xx="${non2xx:-0}"
  sockerr="$(awk '/Socket errors/ {print $0}' "$work/m.txt")"
  total=$(( total + reqs )); errors=$(( errors + non2xx ))
  printf "%-6s %10s %10s %10s %8s %10s %10s %12s %6s %s\n" "$m" "$rps" "$p50" "$p99" "$non2xx" "$(rss_kib)" "$(anon_kib)" "$(data_bytes)" "$(load1)" "$sockerr" | tee -a "$log"
done
end_rss="$(rss_kib)"; end_bytes="$(data_bytes)"
growth=$(( end_bytes - start_bytes ))
echo "end: RSS ${end_rss} KiB (start ${start_rss} KiB), data ${end_bytes} B, load $(cat /proc/loadavg)" | tee -a "$log"
echo "requests: $total, non-2xx: $errors" | tee -a "$log"
if [ "$total" -gt 0 ]; then
  awk -v g="$growth" -v n="$total" 'BEGIN { printf "sled growth: %.1f MB per million writes (assignments + outcomes)\n", g / n * 1e6 / 1e6 }' | tee -a "$log"
fi
curl -sf "$base/v1/audit/verify" | tee -a "$log"; echo | tee -a "$log"
kill -TERM "$server_pid"; wait "$server_pid" || true
serve
echo "restarted on the same data: RSS $(rss_kib) KiB before any request" | tee -a "$log"
curl -sf "$base/v1/audit/verify" >/dev/null
echo "after walking the whole audit chain: RSS $(rss_kib) KiB" | tee -a "$log"
grep -c "panicked" "$work/stderr" | sed 's/^/server panics: /' | tee -a "$log" || true
echo "log: $log"
[ "$errors" -eq 0 ]
