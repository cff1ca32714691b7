"""W1-flat's Dask anchor: submit N empty tasks to a LocalCluster and gather them."""
import json
import sys
import time

from dask.distributed import Client, LocalCluster


def empty(i):
    return i


def main():
    tasks, workers = int(sys.argv[1]), int(sys.argv[2])
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.gather(client.map(empty, range(10), pure=False))
        start = time.perf_counter()
        done = client.gather(client.map(empty, range(tasks), pure=False))
        secs = time.perf_counter() - start
    assert done == list(range(tasks))
    print(json.dumps({"workload": "W1-flat", "system": "dask", "tasks": tasks,
                      "workers": workers, "secs": round(secs, 3),
                      "ns_per_task": round(secs * 1e9 / tasks)}))


if __name__ == "__main__":
    main()
