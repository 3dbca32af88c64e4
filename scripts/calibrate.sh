#!/usr/bin/env bash
# Measures liftlab's statistical guarantees by seeded Monte Carlo and writes docs/CALIBRATION.md.
#
# The figures (A/A false-positive rate, coverage, peeking, power, the decision the verdict reads,
# Thompson regret, drift) come from running liftlab's own statistics and domain code, results
# report included, in process; see `liftlab calibrate --help`.
# Override the sizes or the seed with RUNS, BANDIT_RUNS, DRIFT_RUNS and SEED.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${RUNS:-2000}"
bandit_runs="${BANDIT_RUNS:-200}"
drift_runs="${DRIFT_RUNS:-500}"
seed="${SEED:-20261126}"

mkdir -p docs
cargo run --release --quiet -- calibrate \
  --runs "$runs" \
  --bandit-runs "$bandit_runs" \
  --drift-runs "$drift_runs" \
  --seed "$seed" \
  --out docs/CALIBRATION.md
echo "wrote docs/CALIBRATION.md"
