#!/usr/bin/env bash
# Storage faults against the real binary: a read-only data directory, a full disk, and bytes
# flipped in the database file. Each must give a clear error at start or a 503 problem at
# run time, never a panic and never a 2xx for a write that did not reach the disk.
#
# Needs root (mount), curl and jq. Usage: scripts/storage-faults.sh
# Read-only: a tmpfs remounted read-only (as root, chmod would not stop writes).
# Full: a 16 MiB tmpfs filled by assignments and outcomes until the store refuses.
# Corrupt: random bytes overwritten in the sled `db` file of a stopped server.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "storage-faults.sh needs root for mount"; exit 2; }

cargo build -q --bin liftlab
bin="${CARGO_TARGET_DIR:-target}/debug/liftlab"
work="$(mktemp -d)"
mounts=()
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

spec='{"key":"faults","arms":[{"key":"human","role":"baseline"},{"key":"ai","role":"treatment"}],
 "allocation":{"policy":"fixed","weights":{"human":0.5,"ai":0.5}},
 "metrics":[{"key":"minutes","kind":"duration","direction":"decrease","role":"primary"}]}'

# start DIR LOGNAME: starts a server; sets $base, or returns 1 with its stderr in $work/LOGNAME.
start() {
  : >"$work/$2.out"
  RUST_BACKTRACE=0 "$bin" serve --addr 127.0.0.1:0 --data "$1" >"$work/$2.out" 2>"$work/$2.err" &
  server_pid=$!
  for _ in $(seq 1 100); do
    if grep -q "listening on" "$work/$2.out" 2>/dev/null; then
      base="$(sed -n 's/^listening on //p' "$work/$2.out" | head -n1)"
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      wait "$server_pid" || true
      server_pid=""
      return 1
    fi
    sleep 0.1
  done
  echo "the server neither listened nor exited"; exit 1
}
stop() {
  kill -TERM "$server_pid"; wait "$server_pid" || echo "  (the server exited with status $?)"
  server_pid=""
}
post() { curl -s -o "$work/body" -w '%{http_code}' -X POST "$base$1" -H 'Content-Type: application/json' ${2:+-d "$2"}; }
panics() { grep -c "panicked" "$work/$1.err" || true; }

echo "== read-only data directory"
ro="$work/ro"; mkdir -p "$ro"; mount -t tmpfs -o size=64m tmpfs "$ro"; mounts+=("$ro")
start "$ro/data" ro-setup
post /v1/experiments "$spec" >/dev/null; post /v1/experiments/faults/start >/dev/null
post /v1/experiments/faults/assign '{"unit_id":"before"}' >/dev/null
stop
mount -o remount,ro "$ro"
if start "$ro/data" ro; then
  code="$(post /v1/experiments/faults/assign '{"unit_id":"after"}')"
  echo "  started on a read-only directory; a new assignment answered $code: $(cat "$work/body")"
  [ "$code" = 503 ] || { echo "  FAIL: a write on a read-only disk must be a 503"; exit 1; }
  kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
else
  echo "  refused at start: $(grep -A4 '^Error' "$work/ro.err" | tr '\n' ' ')"
fi
echo "  panics: $(panics ro)"

echo "== full disk"
full="$work/full"; mkdir -p "$full"; mount -t tmpfs -o size=16m tmpfs "$full"; mounts+=("$full")
start "$full/data" full
post /v1/experiments "$spec" >/dev/null; post /v1/experiments/faults/start >/dev/null
acked=0; refused=0; other=0; first_refusal=""
: >"$work/acked"
pad="$(head -c 200 /dev/zero | tr '\0' 'x')"
for i in $(seq 1 200000); do
  code="$(post /v1/experiments/faults/assign "{\"unit_id\":\"u$i-$pad\"}")"
  case "$code" in
    200) acked=$((acked + 1)); echo "u$i-$pad $(jq -r .assignment_id "$work/body")" >>"$work/acked" ;;
    503) refused=$((refused + 1)); [ -n "$first_refusal" ] || first_refusal="$(cat "$work/body")" ;;
    000) echo "  the server stopped answering after $acked acknowledged writes"; break ;;
    *) other=$((other + 1)); echo "  unexpected $code: $(cat "$work/body")" ;;
  esac
  [ "$refused" -ge 20 ] && break
done
echo "  acknowledged $acked assignments, then $refused refusals (503), $other other answers"
echo "  first refusal: $first_refusal"
health="$(curl -s -o /dev/null -w '%{http_code}' "$base/healthz" || true)"
echo "  /healthz while full: $health"
kill -9 "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; server_pid=""
echo "  panics: $(panics full)"
[ "$other" -eq 0 ] || { echo "  FAIL: answers other than 200/503 on a full disk"; exit 1; }
# Every acknowledged write must be there: copy the data to a roomy disk and ask again.
cp -a "$full/data" "$work/roomy"
"$bin" audit verify --data "$work/roomy"
"$bin" rebuild --data "$work/roomy"
start "$work/roomy" roomy
lost=0
while read -r unit id; do
  post /v1/experiments/faults/assign "{\"unit_id\":\"$unit\"}" >/dev/null
  [ "$(jq -r .assignment_id "$work/body")" = "$id" ] || lost=$((lost + 1))
done <"$work/acked"
stop
echo "  acknowledged assignments missing after the disk filled: $lost of $acked"
[ "$lost" -eq 0 ] || { echo "  FAIL: acknowledged writes were lost"; exit 1; }

echo "== bytes overwritten in the database file"
golden="$work/golden"
start "$golden" corrupt-setup
post /v1/experiments "$spec" >/dev/null; post /v1/experiments/faults/start >/dev/null
for i in $(seq 1 300); do
  post /v1/experiments/faults/assign "{\"unit_id\":\"c$i\"}" >/dev/null
  post /v1/outcomes "{\"event_id\":\"e$i\",\"experiment\":\"faults\",\"task_id\":\"c$i\",\"metrics\":{\"minutes\":$i}}" >/dev/null
done
stop
size="$(stat -c %s "$golden/db")"
for bytes in 32 256 2048; do
  c="$work/corrupt-$bytes"; rm -rf "$c"; cp -a "$golden" "$c"
  for _ in $(seq 1 "$bytes"); do
    off=$(( $(od -An -N4 -tu4 /dev/urandom | tr -d ' ') % size ))
    head -c 1 /dev/urandom | dd of="$c/db" bs=1 seek="$off" conv=notrunc status=none
  done
  echo "  $bytes random bytes overwritten in a $size-byte db file:"
  if start "$c" "corrupt-$bytes"; then
    v="$(curl -s "$base/v1/audit/verify")"
    e="$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/experiments/faults")"
    r="$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/experiments/faults/results")"
    echo "    started; /v1/audit/verify: $v; experiment: $e; results: $r"
    stop || true
    RUST_BACKTRACE=0 "$bin" rebuild --data "$c" 2>&1 | tail -n 1 | sed 's/^/    rebuild: /' || true
  else
    echo "    refused at start: $(grep -A3 '^Error' "$work/corrupt-$bytes.err" | tr '\n' ' ')"
  fi
  echo "    panics: $(panics "corrupt-$bytes")"
done
echo "storage faults: done"
