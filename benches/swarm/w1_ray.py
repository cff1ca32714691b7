"""W1-flat's Ray anchor: submit N empty tasks to Ray's local cluster and gather them, as
w1_dask.py does on Dask's LocalCluster."""
import json
import sys
import time

sys.dont_write_bytecode = True  # importing ray_local leaves no __pycache__ in benches/
from ray_local import local_ray, ray  # noqa: E402


@ray.remote(num_cpus=1)
def empty(i):
    return i


def main():
    tasks, workers = int(sys.argv[1]), int(sys.argv[2])
    with local_ray(workers):
        ray.get([empty.remote(i) for i in range(10)])
        start = time.perf_counter()
        done = ray.get([empty.remote(i) for i in range(tasks)])
        secs = time.perf_counter() - start
    assert done == list(range(tasks))
    print(json.dumps({"workload": "W1-flat", "system": "ray", "tasks": tasks,
                      "workers": workers, "secs": round(secs, 3),
                      "ns_per_task": round(secs * 1e9 / tasks)}))


if __name__ == "__main__":
    main()
