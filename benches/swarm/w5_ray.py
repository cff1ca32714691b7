"""W5's Ray anchor: the same bag of busy-spinning tasks on Ray's local cluster, as w5_dask.py
runs it on Dask's LocalCluster."""
import json
import sys
import time

sys.dont_write_bytecode = True  # importing ray_local leaves no __pycache__ in benches/
from ray_local import local_ray, ray  # noqa: E402


@ray.remote(num_cpus=1)
def spin(us):
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass
    return us


def main():
    tasks, us, workers = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with local_ray(workers):
        ray.get([spin.remote(1) for _ in range(10)])  # warm up the workers
        start = time.perf_counter()
        futures = [spin.remote(us) for _ in range(tasks)]
        done = ray.get(futures)
        secs = time.perf_counter() - start
    assert done == [us] * tasks
    print(json.dumps({"workload": "W5", "system": "ray", "tasks": tasks, "us": us,
                      "workers": workers, "secs": round(secs, 3),
                      "tasks_per_s": round(tasks / secs)}))


if __name__ == "__main__":
    main()
