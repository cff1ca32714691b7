"""W5's anchor: the same bag of busy-spinning tasks on dask.distributed's LocalCluster."""
import json
import sys
import time

from dask.distributed import Client, LocalCluster


def spin(us):
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass
    return us


def main():
    tasks, us, workers = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.gather(client.map(spin, [1] * 10, pure=False))  # warm up the workers
        start = time.perf_counter()
        futures = client.map(spin, [us] * tasks, pure=False)
        done = client.gather(futures)
        secs = time.perf_counter() - start
    assert done == [us] * tasks
    print(json.dumps({"workload": "W5", "system": "dask", "tasks": tasks, "us": us,
                      "workers": workers, "secs": round(secs, 3),
                      "tasks_per_s": round(tasks / secs)}))


if __name__ == "__main__":
    main()
