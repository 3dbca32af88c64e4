#!/usr/bin/env bash
# kill -9 crash loop against the real binary: ROUNDS rounds (default 20) of mixed assign /
# outcome / spec traffic, each ended by SIGKILL after a seeded random number of
# acknowledgements; after each, every acknowledged write must be on disk, the audit chain must
# verify and a rebuild from the logs must equal the live aggregates. At the end the CLI checks
# the final data directory too (`liftlab audit verify --data`, `liftlab rebuild --data`).
#
# Usage: scripts/crash-loop.sh [ROUNDS] [SEED]     (the seed defaults to a random one, printed)
# This is the long form of tests/reliability.rs::kill_9_during_mixed_traffic_loses_no_acknowledged_write.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-20}"
seed="${2:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
echo "crash loop: $rounds rounds, seed $seed"
cargo build -q --bin liftlab
cargo test -q --no-run --test tests

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
set +e
LIFTLAB_CRASH_ROUNDS="$rounds" LIFTLAB_CRASH_SEED="$seed" LIFTLAB_CRASH_DATA="$work/data" \
  cargo test -q --test tests reliability::kill_9_during_mixed_traffic_loses_no_acknowledged_write \
  -- --exact --nocapture >"$work/log" 2>&1
status=$?
set -e
grep -E "crash round|test result|panicked" "$work/log" || true
if [ "$status" -ne 0 ]; then
  cat "$work/log"
  echo "crash loop FAILED after $(( $(date +%s) - start )) s (seed $seed)"
  exit "$status"
fi
bin="${CARGO_TARGET_DIR:-target}/debug/liftlab"
echo "final data directory, checked by the CLI:"
"$bin" audit verify --data "$work/data"
"$bin" rebuild --data "$work/data"
echo "crash loop passed: $rounds rounds in $(( $(date +%s) - start )) s (seed $seed)"
