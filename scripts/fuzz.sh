#!/usr/bin/env bash
# Runs liftlab's proptest-based fuzz targets for a fixed number of cases each, with a time cap.
#
# Nightly Rust (and so cargo-fuzz) is not available, so the targets are proptest properties:
#   spec parser      crates/domain/tests/fuzz_spec.rs   (arbitrary text, JSON, mutated examples)
#   store records    crates/store/tests/fuzz_records.rs (damaged records of a real data directory)
#   HTTP inputs      tests/fuzz.rs                       (outcome bodies/NDJSON, assign, specs, in process)
#
# Usage: scripts/fuzz.sh [CASES]      CASES per property (default 20000; the store target runs
#                                     CASES/20, since each of its cases opens a database twice)
# Env:   FUZZ_MAX_SECONDS  time cap per target (default 1800)
#        CARGO_TARGET_DIR  as usual
# A failure prints proptest's minimal input; add it as a named regression test in the target's
# file, fix the bug, and run again.
set -euo pipefail
cd "$(dirname "$0")/.."

cases="${1:-20000}"
store_cases=$(( cases / 20 > 0 ? cases / 20 : 1 ))
cap="${FUZZ_MAX_SECONDS:-1800}"

echo "building the fuzz targets"
cargo test --no-run -p liftlab-domain --test fuzz_spec
cargo test --no-run -p liftlab-store --test fuzz_records
cargo test --no-run --test tests

run() {
  local name="$1" n="$2"; shift 2
  echo "== $name: $n cases per property (cap ${cap}s)"
  local start end status
  start=$(date +%s)
  set +e
  PROPTEST_CASES="$n" timeout "$cap" "$@"
  status=$?
  set -e
  end=$(date +%s)
  if [ "$status" -eq 124 ]; then
    echo "== $name: stopped by the time cap after $((end - start)) s (no failure found so far)"
  elif [ "$status" -ne 0 ]; then
    echo "== $name: FAILED (exit $status) after $((end - start)) s"
    exit "$status"
  else
    echo "== $name: passed in $((end - start)) s"
  fi
}

run "spec parser" "$cases" cargo test -q -p liftlab-domain --test fuzz_spec
LIFTLAB_FUZZ_REPORT=1 run "store records" "$store_cases" \
  cargo test -q -p liftlab-store --test fuzz_records -- --nocapture
run "HTTP inputs" "$cases" cargo test -q --test tests fuzz::
