"""W2's Ray anchor: the seed's nested loop on Ray's local cluster, as w2_dask.py runs it on
Dask's LocalCluster: load each file once (a list of ~100 KB of floats as a numpy array),
score every parameter against it (the load's ObjectRef passed as the argument, so Ray runs
the score after the load and hands it the array), keep the best. Ray's defaults are kept:
a load's 100,000-byte result is under its 100 KiB inlining limit, so the driver holds it and
copies it into each score task it sends (about 1 GB of the driver's memory at 20 x 500)
where Dask sends it to each worker once; with RAY_max_direct_call_object_size=1000 it goes
through the object store instead."""
import json
import sys
import time

import numpy as np

sys.dont_write_bytecode = True  # importing ray_local leaves no __pycache__ in benches/
from ray_local import local_ray, ray  # noqa: E402


@ray.remote(num_cpus=1)
def load(file, values):
    x = (0x9E3779B97F4A7C15 ^ (file * 0x2545F4914F6CDD1D)) & 0xFFFFFFFFFFFFFFFF
    out = np.empty(values)
    for i in range(values):
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        out[i] = (x % 10_000) / 100.0
    return out


@ray.remote(num_cpus=1)
def score(param, data):
    d = data - param
    return -float(np.abs(d).mean() + np.sqrt((d * d).mean()))


def main():
    files, params, values, workers = (int(a) for a in sys.argv[1:5])
    with local_ray(workers):
        ray.get([score.remote(1.0, np.zeros(4)) for _ in range(10)])
        start = time.perf_counter()
        futures = []
        for f in range(files):
            data = load.remote(f, values)
            for p in range(params):
                futures.append(score.remote(p * 100.0 / params, data))
        best = max(ray.get(futures))
        secs = time.perf_counter() - start
    print(json.dumps({"workload": "W2", "system": "ray", "files": files, "params": params,
                      "values": values, "workers": workers, "secs": round(secs, 3),
                      "best": best}))


if __name__ == "__main__":
    main()
