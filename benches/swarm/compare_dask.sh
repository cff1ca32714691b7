#!/usr/bin/env bash
# peer against two anchors on W1-flat, W2 and W5, same machine, same run, 2 workers each:
# dask.distributed's LocalCluster (two worker processes of one thread) and Ray's local
# cluster (ray.init with 2 CPUs: at most two tasks at once, each in a worker process; on
# 127.0.0.1, no dashboard, usage stats off: benches/swarm/ray_local.py). peer: one pool, or
# two processes of one worker. Prints each system's figure and the ratios dask/peer and
# ray/peer, one JSON object per line, then a table. Makes its own venvs with pip, Dask's
# under target/w5-venv and Ray's (pinned) under target/ray-venv. With W5_TASKS 100000 it took
# 10 min 19 s on 2026-12-07 (Dask's W5 alone 253 s, Ray's 94 s); at the defaults, a few
# minutes (not timed), past the builds and the first run's pip installs.
# Usage: compare_dask.sh [W1_TASKS W5_TASKS W5_US] (default 20000 20000 100); W1_TASKS is
# the Dask and Ray W1 runs' task count.
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
venv="$root/target/w5-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
"$venv/bin/python" -c 'import dask.distributed, numpy' 2>/dev/null ||
  "$venv/bin/pip" install --quiet "dask[distributed]==2026.8.0" numpy >&2
ray_version=2.60.0 ray_numpy=2.4.6
ray_venv="$root/target/ray-venv"
[ -x "$ray_venv/bin/python" ] || python3 -m venv "$ray_venv" >&2
"$ray_venv/bin/python" -c "import ray, numpy; assert ray.__version__ == '$ray_version'" \
  2>/dev/null ||
  "$ray_venv/bin/pip" install --quiet "ray==$ray_version" "numpy==$ray_numpy" >&2
cargo build --release -p peer-benches --bins --manifest-path "$root/Cargo.toml" >&2
w1_tasks=${1:-20000}; w5_tasks=${2:-20000}; w5_us=${3:-100}
py="$venv/bin/python"
ray_py="$ray_venv/bin/python"
tmp=$(mktemp -d)

# W1-flat: peer submits 1M empty tasks to one pool of 2 workers (median of 5 rounds); Dask
# and Ray fewer (they take milliseconds and hundreds of microseconds per task), compared per
# task.
"$root/target/release/w1_interleaved" flat --rounds 5 | tail -1 >"$tmp/w1_peer.json"
"$py" "$here/w1_dask.py" "$w1_tasks" 2 >"$tmp/w1_dask.json"
"$ray_py" "$here/w1_ray.py" "$w1_tasks" 2 >"$tmp/w1_ray.json"

# W2: the seed's nested loop.
"$harness" bench w2 --json --runs 3 >"$tmp/w2_peer.json"
"$py" "$here/w2_dask.py" 20 500 12500 2 >"$tmp/w2_dask.json"
"$ray_py" "$here/w2_ray.py" 20 500 12500 2 >"$tmp/w2_ray.json"

# W5: a bag of busy-spinning tasks over two processes.
start_peer "$tmp/join.txt" --workers 1
"$harness" bench spin --json --tasks "$w5_tasks" --us "$w5_us" --workers 1 --bootstrap "$addr" \
  >"$tmp/w5_peer.json"
kill "$pid"; wait "$pid" 2>/dev/null || true
"$py" "$here/w5_dask.py" "$w5_tasks" "$w5_us" 2 >"$tmp/w5_dask.json"
"$ray_py" "$here/w5_ray.py" "$w5_tasks" "$w5_us" 2 >"$tmp/w5_ray.json"

"$py" - "$tmp" <<'PY'
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
load = lambda name: json.loads((d / name).read_text().strip().splitlines()[-1])
w1p, w1d, w1r = load("w1_peer.json"), load("w1_dask.json"), load("w1_ray.json")
w2p, w2d, w2r = load("w2_peer.json"), load("w2_dask.json"), load("w2_ray.json")
w5p, w5d, w5r = load("w5_peer.json"), load("w5_dask.json"), load("w5_ray.json")
peer_flat = w1p["impl"]["peer_gather"]["ns_per_elem"]
rows = [
    ("W1-flat ns/task", peer_flat, w1d["ns_per_task"], w1r["ns_per_task"]),
    ("W2 2 processes s", w2p["swarm"]["makespan_s"], w2d["secs"], w2r["secs"]),
    ("W2 one pool s", w2p["local"]["makespan_s"], w2d["secs"], w2r["secs"]),
    (f"W5 {w5d['tasks']} x {w5d['us']} us s", w5p["secs"], w5d["secs"], w5r["secs"]),
]
for name, peer, dask, ray in rows:
    print(json.dumps({"figure": name, "peer": peer, "dask": dask, "ray": ray,
                      "dask_over_peer": round(dask / peer, 2),
                      "ray_over_peer": round(ray / peer, 2)}))
print(f"{'figure':<24} {'peer':>12} {'dask':>12} {'ray':>12} {'dask/peer':>10} {'ray/peer':>10}")
for name, peer, dask, ray in rows:
    print(f"{name:<24} {peer:>12.4g} {dask:>12.4g} {ray:>12.4g} {dask / peer:>10.1f}"
          f" {ray / peer:>10.1f}")
PY
rm -rf "$tmp"
