#!/usr/bin/env bash
# Run the curated paper suites and commit-ready copy their run directories to reports/<suite>/.
#   bash tools/run_curated.sh [SUITE...]      (default: every paper suite)
# The setup is the one recorded in the committed manifests: one thread per task and the
# reproducible mode (AVX2 kernels on x86-64), so a rerun on any x86-64 CPU with AVX2 and the
# same torch gives the committed numbers bit for bit; only the timings are the machine's.
# It calls `python -m normbench`, so a checkout runs its own code (not an installed copy's).
# Seed budget: each suite starts with its own seeds and adds seeds (run --until-decided) to the
# variants of undecided claims, up to MAX_SEEDS per variant (default 10); MAX_SEEDS=0 runs
# the suites' own seeds only.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # tools/claims_table.py imports this checkout too
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(ioffe2015-mlp ioffe2015-mnist lr-multipliers santurkar2018 groupnorm-batch-size rnn-layernorm placement groupnorm-epochs mnist1d-table init-scale bn-dropout two-domains quickstart ioffe2015-fashion groupnorm-fashion santurkar2018-fashion xiong2020-warmup xiong2020-deep qknorm2023 rmsnorm2019 dyt2025-text dyt2025-vit dyt2025-cost transformer-norms)
out="$(mktemp -d)"
max_seeds="${MAX_SEEDS:-10}"
for suite in "${suites[@]}"; do
  echo "== $suite" >&2
  status=0
  adaptive=()
  if [ "$max_seeds" != 0 ] && grep -q '^claims:' "suites/$suite.yaml"; then
    adaptive=(--until-decided --max-seeds "$max_seeds")
  fi
  python -m normbench run "suites/$suite.yaml" --out "$out" --workers 2 --threads-per-worker 1 --reproducible --quiet \
    "${adaptive[@]}" --format markdown > /dev/null || status=$?
  run_dir="$(ls -d "$out/$suite"/*/ | tail -n 1)"
  rm -rf "reports/$suite"
  cp -r "$run_dir" "reports/$suite"
  echo "   exit $status -> reports/$suite" >&2
done
python tools/claims_table.py
