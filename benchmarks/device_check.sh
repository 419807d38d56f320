#!/usr/bin/env bash
# Throughput on an accelerator (issue 15): likelihood, speed and FID measurements in one table.
# Usage: benchmarks/device_check.sh [--quick] [--device cuda] [--skip fid] ...
# Needs torch, numpy, transformers/tokenizers and genbench importable by $PYTHON (default python3);
# no network. Bounded by `timeout` (5 minutes); each measurement prints an error row on failure.
set -u
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
exec timeout --signal=INT 295 "${PYTHON:-python3}" benchmarks/device_check.py "$@"
