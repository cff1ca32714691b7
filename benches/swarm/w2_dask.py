"""W2's anchor: the seed's nested loop on dask.distributed's LocalCluster, as the seed writes
it: load each file once (a list of ~100 KB of floats as a numpy array), score every
parameter against it, keep the best."""
import json
import sys
import time

import numpy as np
from dask.distributed import Client, LocalCluster


def load(file, values):
    x = (0x9E3779B97F4A7C15 ^ (file * 0x2545F4914F6CDD1D)) & 0xFFFFFFFFFFFFFFFF
    out = np.empty(values)
    for i in range(values):
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        out[i] = (x % 10_000) / 100.0
    return out


def score(param, data):
    d = data - param
    return -float(np.abs(d).mean() + np.sqrt((d * d).mean()))


def main():
    files, params, values, workers = (int(a) for a in sys.argv[1:5])
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.gather(client.map(score, [1.0] * 10, [np.zeros(4)] * 10, pure=False))
        start = time.perf_counter()
        futures = []
        for f in range(files):
            data = client.submit(load, f, values, pure=False)
            for p in range(params):
                futures.append(client.submit(score, p * 100.0 / params, data, pure=False))
        best = max(client.gather(futures))
        secs = time.perf_counter() - start
    print(json.dumps({"workload": "W2", "system": "dask", "files": files, "params": params,
                      "values": values, "workers": workers, "secs": round(secs, 3),
                      "best": best}))


if __name__ == "__main__":
    main()
