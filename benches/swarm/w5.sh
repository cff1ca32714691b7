#!/usr/bin/env bash
# W5: a bag of independent busy-spinning tasks, peer against Dask's LocalCluster on the same
# machine in the same run, with the same number of workers (2: one per process for peer, a
# joined peer and the submitting peer; two worker processes for Dask).
# Usage: w5.sh [TASKS US]... (default: 100000 100, 20000 1000, 2000 10000).
# Makes its own venv with pip under target/w5-venv.
source "$(dirname "$0")/lib.sh"
venv="$root/target/w5-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet "dask[distributed]==2026.8.0" >&2
fi
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(100000 100 20000 1000 2000 10000)
tmp=$(mktemp -d)
for ((i = 0; i < ${#args[@]}; i += 2)); do
  tasks=${args[i]}; us=${args[i+1]}
  start_peer "$tmp/join.txt" --workers 1
  "$harness" bench spin --json --tasks "$tasks" --us "$us" --workers 1 --bootstrap "$addr"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  "$venv/bin/python" "$root/benches/swarm/w5_dask.py" "$tasks" "$us" 2
  awk -v n="$tasks" -v us="$us" 'BEGIN{printf "{\"workload\":\"W5\",\"system\":\"ideal\",\"tasks\":%d,\"us\":%d,\"workers\":2,\"secs\":%.3f}\n", n, us, n*us/2e6}'
done
