"""The Ray anchors' local cluster: Ray's counterpart of the Dask scripts' LocalCluster, shared
by w1_ray.py, w2_ray.py and w5_ray.py. It starts Ray on this machine alone: one node with
`cpus` CPUs (so at most `cpus` tasks run at once, each in its own worker process, as Dask's
`cpus` workers of one thread each), on 127.0.0.1, with no dashboard and usage stats off, so
it reaches nothing off this machine; its files go in a temporary directory that is removed
on exit. The start-up time goes to stderr, out of the JSON line and out of the timed part."""
import contextlib
import os
import shutil
import sys
import tempfile
import time

# Before Ray is imported: no usage stats report, and the node's address is the loopback one
# (on Linux Ray would otherwise take the address of the default route's interface).
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import ray  # noqa: E402


@contextlib.contextmanager
def local_ray(cpus):
    temp = tempfile.mkdtemp(prefix="ray-")
    start = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, num_gpus=0, include_dashboard=False,
             log_to_driver=False, logging_level="warning", _node_ip_address="127.0.0.1",
             _temp_dir=temp)
    print(f"ray {ray.__version__}: local cluster of {cpus} CPUs started in "
          f"{time.perf_counter() - start:.2f} s", file=sys.stderr)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
