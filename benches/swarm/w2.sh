#!/usr/bin/env bash
# W2: the seed's nested loop (20 files x 500 params, ~100 KB loads, ~10 us scores). peer on
# one pool of 2 workers and on 2 processes x 1 worker, each against the same work run on one
# thread in the same run (`peer-harness bench w2`); then Dask's LocalCluster (2 worker processes) on
# the same loop, in the same run. Makes its own venv with pip under target/w5-venv.
# Usage: w2.sh [FILES PARAMS VALUES].
source "$(dirname "$0")/lib.sh"
venv="$root/target/w5-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
"$venv/bin/python" -c 'import dask.distributed, numpy' 2>/dev/null ||
  "$venv/bin/pip" install --quiet "dask[distributed]==2026.8.0" numpy >&2
files=${1:-20}; params=${2:-500}; values=${3:-12500}
"$harness" bench w2 --json --files "$files" --params "$params" --values "$values" --peers 2 --workers 1
"$venv/bin/python" "$root/benches/swarm/w2_dask.py" "$files" "$params" "$values" 2
