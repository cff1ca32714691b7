#!/usr/bin/env bash
# peer against dask.distributed's LocalCluster on W1-flat, W2 and W5, same machine, same run,
# 2 workers each (peer: one pool, or two processes of one worker; Dask: two worker
# processes of one thread). Prints each system's figure and the ratio, one JSON object per
# line, then a table. Makes its own venv with pip under target/w5-venv. About 2 minutes.
# Usage: compare_dask.sh [W1_DASK_TASKS W5_TASKS W5_US] (default 20000 20000 100).
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
venv="$root/target/w5-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
"$venv/bin/python" -c 'import dask.distributed, numpy' 2>/dev/null ||
  "$venv/bin/pip" install --quiet "dask[distributed]==2026.8.0" numpy >&2
cargo build --release -p peer-benches --bins --manifest-path "$root/Cargo.toml" >&2
w1_tasks=${1:-20000}; w5_tasks=${2:-20000}; w5_us=${3:-100}
py="$venv/bin/python"
tmp=$(mktemp -d)

# W1-flat: peer submits 1M empty tasks to one pool of 2 workers (median of 5 rounds); Dask
# fewer (it takes milliseconds per task), compared per task.
"$root/target/release/w1_interleaved" flat --rounds 5 | tail -1 >"$tmp/w1_peer.json"
"$py" "$here/w1_dask.py" "$w1_tasks" 2 >"$tmp/w1_dask.json"

# W2: the seed's nested loop.
"$harness" bench w2 --json --runs 3 >"$tmp/w2_peer.json"
"$py" "$here/w2_dask.py" 20 500 12500 2 >"$tmp/w2_dask.json"

# W5: a bag of busy-spinning tasks over two processes.
start_peer "$tmp/join.txt" --workers 1
"$harness" bench spin --json --tasks "$w5_tasks" --us "$w5_us" --workers 1 --bootstrap "$addr" \
  >"$tmp/w5_peer.json"
kill "$pid"; wait "$pid" 2>/dev/null || true
"$py" "$here/w5_dask.py" "$w5_tasks" "$w5_us" 2 >"$tmp/w5_dask.json"

"$py" - "$tmp" <<'PY'
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
load = lambda name: json.loads((d / name).read_text().strip().splitlines()[-1])
w1p, w1d = load("w1_peer.json"), load("w1_dask.json")
w2p, w2d = load("w2_peer.json"), load("w2_dask.json")
w5p, w5d = load("w5_peer.json"), load("w5_dask.json")
peer_flat = w1p["impl"]["peer_gather"]["ns_per_elem"]
rows = [
    ("W1-flat ns/task", peer_flat, w1d["ns_per_task"]),
    ("W2 2 processes s", w2p["swarm"]["makespan_s"], w2d["secs"]),
    ("W2 one pool s", w2p["local"]["makespan_s"], w2d["secs"]),
    (f"W5 {w5d['tasks']} x {w5d['us']} us s", w5p["secs"], w5d["secs"]),
]
for name, peer, dask in rows:
    print(json.dumps({"figure": name, "peer": peer, "dask": dask,
                      "dask_over_peer": round(dask / peer, 2)}))
print(f"{'figure':<24} {'peer':>12} {'dask':>12} {'dask/peer':>10}")
for name, peer, dask in rows:
    print(f"{name:<24} {peer:>12.4g} {dask:>12.4g} {dask / peer:>10.1f}")
PY
rm -rf "$tmp"
