#!/usr/bin/env bash
# Storage faults against the real binary: a read-only data directory, a full disk, bytes
# overwritten in the views' database file or in the log, either cut short, a log left by
# kill -9 ahead of the views (replayed intact, refused or reported when damaged), and the
# views lost altogether (folded again from the log).
# Each must give a clear error at start or a 503 problem at run time, never a panic, never a
# 2xx for a write that did not reach the disk, and never a server that starts on less (or
# other) data than was acknowledged as if nothing happened.
#
# Needs root (mount), curl and jq. Usage: scripts/storage-faults.sh
# Env: TRIALS (default 3) damaged copies per kind of corruption, SEED (default: random,
#      printed) for the corrupted offsets and bytes.
# Read-only: a tmpfs remounted read-only (as root, chmod would not stop writes).
# Full: a 16 MiB tmpfs filled by assignments and outcomes until the store refuses.
# Corrupt: random bytes overwritten in the sled `views/db` file or the log segment of a stopped
# server, or the file truncated; a copy that starts must serve the whole acknowledged history,
# or report the damage (verify fails, or a read answers 503).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "storage-faults.sh needs root for mount"; exit 2; }

cargo build -q -j1 --bin liftlab
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
  echo "  refused at start: $(grep -i -A4 '^error' "$work/ro.err" | tr '\n' ' ')"
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

echo "== damaged database files"
trials="${TRIALS:-3}"
seed="${SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}"
echo "  seed $seed, $trials damaged copies per kind"
golden="$work/golden"
start "$golden" corrupt-setup
post /v1/experiments "$spec" >/dev/null; post /v1/experiments/faults/start >/dev/null
for i in $(seq 1 300); do
  post /v1/experiments/faults/assign "{\"unit_id\":\"c$i\"}" >/dev/null
  post /v1/outcomes "{\"event_id\":\"e$i\",\"experiment\":\"faults\",\"task_id\":\"c$i\",\"metrics\":{\"minutes\":$i}}" >/dev/null
done
golden_records="$(curl -s "$base/v1/audit/verify" | jq -r .records)"
stop
segment="log/00000000000000000001.log"
echo "  the undamaged copy: $golden_records audit records, a $(stat -c %s "$golden/views/db")-byte views/db file, a $(stat -c %s "$golden/$segment")-byte log"
silent=0

# judge NAME: starts the damaged copy $c and says what liftlab made of it: refused at start,
# started with the whole history, started and reporting the damage (verify fails or a read
# answers 503), or started on other data without a word (counted in $silent: a failure).
judge() {
  if ! start "$c" "$1"; then
    echo "    refused at start: $(grep -i -A3 '^error' "$work/$1.err" | tr '\n' ' ')"
    echo "    panics: $(panics "$1")"
    return
  fi
  local v e r records ok rb
  v="$(curl -s "$base/v1/audit/verify")"
  e="$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/experiments/faults")"
  r="$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/experiments/faults/results")"
  records="$(echo "$v" | jq -r '.records // empty' 2>/dev/null || true)"
  ok="$(echo "$v" | jq -r 'if has("ok") then .ok else empty end' 2>/dev/null || true)"
  stop || true
  rb="$(RUST_BACKTRACE=0 "$bin" rebuild --data "$c" 2>&1 | tail -n 1 || true)"
  if [ "$ok" = true ] && [ "$records" = "$golden_records" ] && [ "$e" = 200 ] && [ "$r" = 200 ]; then
    echo "    started with the whole history (the damage hit bytes sled no longer reads): verify $v"
  elif [ "$ok" = false ] || [ "$e" = 503 ] || [ "$r" = 503 ] || [ -z "$ok" ]; then
    echo "    started, and reports the damage: verify $v; experiment $e; results $r"
  else
    echo "    FAIL: started on other data without a word: verify $v; experiment $e; results $r"
    silent=$((silent + 1))
  fi
  echo "    rebuild: $rb"
  echo "    panics: $(panics "$1")"
}

# overwrite FILE N TRIAL: N seeded random bytes at seeded random offsets of FILE.
overwrite() {
  local size; size="$(stat -c %s "$1")"
  awk -v seed="$seed" -v trial="$3" -v n="$2" -v size="$size" 'BEGIN {
    srand(seed * 100000 + n * 10 + trial)
    for (i = 0; i < n; i++) printf "%d %d\n", int(rand() * size), int(rand() * 256)
  }' | while read -r off byte; do
    printf '%b' "\\0$(printf '%03o' "$byte")" | dd of="$1" bs=1 seek="$off" conv=notrunc status=none
  done
}

for file in views/db "$segment"; do
  size="$(stat -c %s "$golden/$file")"
  for bytes in 32 256 2048; do
    for t in $(seq 1 "$trials"); do
      name="corrupt-$(basename "$file")-$bytes-$t"
      c="$work/$name"; rm -rf "$c"; cp -a "$golden" "$c"
      overwrite "$c/$file" "$bytes" "$t"
      echo "  $bytes random bytes overwritten in $file (copy $t):"
      judge "$name"
    done
  done
  for keep in 90 50 10; do
    name="cut-$(basename "$file")-$keep"
    c="$work/$name"; rm -rf "$c"; cp -a "$golden" "$c"
    truncate -s $(( size * keep / 100 )) "$c/$file"
    echo "  $file cut to $keep% of its length:"
    judge "$name"
  done
done

echo "== the log after kill -9"
k="$work/killed"; cp -a "$golden" "$k"
start "$k" killed
for i in $(seq 1 50); do post /v1/experiments/faults/assign "{\"unit_id\":\"k$i\"}" >/dev/null; done
kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
echo "  the kill left a $(stat -c %s "$k/$segment")-byte log"
c="$work/log-intact"; cp -a "$k" "$c"
start "$c" log-intact
records="$(curl -s "$base/v1/audit/verify" | jq -r .records)"
stop
echo "  intact log: started and replayed what the views lacked; $records audit records (expected $((golden_records + 50)))"
[ "$records" = $((golden_records + 50)) ] || { echo "  FAIL: the replay lost acknowledged writes"; exit 1; }
c="$work/log-damaged"; cp -a "$k" "$c"
damaged="$c/$segment"
at=$(( $(stat -c %s "$damaged") - 2000 ))
orig="$(od -An -tu1 -j$at -N1 "$damaged" | tr -d ' ')"
printf '%b' "\\0$(printf '%03o' $((255 - orig)))" | dd of="$damaged" bs=1 seek=$at conv=notrunc status=none
echo "  a byte 2000 bytes before the end of the log changed:"
judge log-damaged

c="$work/no-views"; rm -rf "$c"; cp -a "$golden" "$c"
rm -rf "$c/views"
echo "  the views deleted:"
judge no-views
echo "  copies that started on other data without a word: $silent"
[ "$silent" -eq 0 ] || { echo "  FAIL: a damaged database opened silently"; exit 1; }
echo "storage faults: done"
