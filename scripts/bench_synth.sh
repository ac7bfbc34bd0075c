#!/usr/bin/env bash
# The synthetic-benchmark ablation table (not in CI): see scripts/bench_synth.py.
#   scripts/bench_synth.sh [--jobs 2] [--rows "full DEL,pan off"] [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" scripts/bench_synth.py "$@"
