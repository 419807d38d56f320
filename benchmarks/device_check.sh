#!/usr/bin/env bash
# Throughput on an accelerator (issue 15): likelihood, speed and FID measurements in one table.
# Usage: benchmarks/device_check.sh [--quick] [--device cuda] [--skip fid] [--with-f32] ...
# Needs torch, numpy, transformers/tokenizers and genbench importable by $PYTHON (default python3);
# no network. Bounded by `timeout` (320 s, then SIGINT: the table of what was measured is still
# printed; killed 20 s later); each measurement prints an error row on failure, and no new
# measurement starts after --budget-s (250 s).
set -u
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
exec timeout --signal=INT --kill-after=20 320 "${PYTHON:-python3}" benchmarks/device_check.py "$@"
