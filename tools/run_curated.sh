#!/usr/bin/env bash
# Run the curated paper suites and commit-ready copy their run directories to reports/<suite>/.
#   bash tools/run_curated.sh [SUITE...]      (default: every paper suite)
set -euo pipefail
cd "$(dirname "$0")/.."
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(ioffe2015-mlp ioffe2015-mnist lr-multipliers santurkar2018 groupnorm-batch-size rnn-layernorm placement groupnorm-epochs mnist1d-table init-scale bn-dropout two-domains quickstart)
out="$(mktemp -d)"
for suite in "${suites[@]}"; do
  echo "== $suite" >&2
  status=0
  normbench run "suites/$suite.yaml" --out "$out" --workers 2 --threads-per-worker 1 --quiet \
    --format markdown > /dev/null || status=$?
  run_dir="$(ls -d "$out/$suite"/*/ | tail -n 1)"
  rm -rf "reports/$suite"
  cp -r "$run_dir" "reports/$suite"
  echo "   exit $status -> reports/$suite" >&2
done
python tools/claims_table.py
