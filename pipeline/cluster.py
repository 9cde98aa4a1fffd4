"""Dask clusters from the scene's `cluster:` section: local, an existing scheduler, SLURM, Kubernetes."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import psutil
from distributed import Client, LocalCluster, WorkerPlugin

from schemas.scene import ClusterConfig

log = logging.getLogger(__name__)


# The environment every worker process is spawned with (its nanny sets it before the process starts:
# glibc reads its malloc settings once, at start). Distributed's own default sets
# MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's mmap threshold at 128 KiB: every larger buffer
# (a batch of crops, a network's activations and gradients) is then mapped and unmapped afresh,
# zero-filled by the kernel each time. Unset (None), glibc's thresholds adapt to the allocations seen,
# and TrimAfterTask gives the freed heap back between tasks instead. Two malloc arenas, not glibc's 8
# per core: the threads of a task (a reader, a network's) would each keep freed memory in an arena of
# their own. Both together: 0.5-gigapixel ingest + detect peaks at 1.19-1.20 GB instead of 1.43-1.45,
# as fast (the arenas are 0.05 GB of that; benchmarks/README.md).
WORKER_ENV: dict[str, str | None] = {
    "MALLOC_TRIM_THRESHOLD_": None,
    "MALLOC_ARENA_MAX": "2",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}


# How a worker started elsewhere (SLURM jobs, Kubernetes pods) gets WORKER_ENV: its nanny reads this
# variable into distributed's config (a Python literal, None unsetting a variable).
WORKER_ENV_VARIABLE = "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON"


def worker_environ() -> dict[str, str | None]:
    """Distributed's pre-spawn environment with WORKER_ENV over it: what a nanny sets (None: unset)
    before it spawns its worker process. A variable set in the nanny's own environment wins."""
    import dask

    return {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENV}


def worker_env_literal() -> str:
    """WORKER_ENV as the value of WORKER_ENV_VARIABLE (a job script's export, a pod's env)."""
    return repr(dict(WORKER_ENV))


def dask_setup(worker: Any) -> None:
    """Preloaded into each local worker process (`distributed.worker.preload`): Ctrl-C in a terminal
    signals the whole foreground process group, and a worker that dies of it prints its own traceback
    and leaks its semaphores; the driver alone handles the interrupt and closes the cluster."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


class TrimAfterTask(WorkerPlugin):
    """Hands a worker's freed heap back to the OS each time one of its tasks ends.

    WORKER_ENV leaves glibc's trim threshold at its default, because distributed's 64 KiB made every
    large free an munmap and every next allocation a page fault (a third of the crowd step in the
    kernel). Without eager trimming a worker keeps much of what a large task freed (its heap and
    arenas) into the next; one `malloc_trim(0)` per finished task (well under a millisecond when there
    is little to return) keeps the speed and gives the memory back between tasks. `open_client`
    registers it with the scheduler, which hands it to every worker of every cluster kind, restarted
    ones included."""

    name = "gigacrowd-trim-after-task"

    def setup(self, worker: Any) -> None:
        self._trim = _malloc_trim()

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if start == "executing" and self._trim is not None:
            self._trim(0)


def _malloc_trim() -> Any:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class ClusterError(RuntimeError):
    """The configured cluster cannot be reached or created. The message is one line."""


def local_cluster_kwargs(
    cfg: ClusterConfig, cpus: int | None = None, memory: int | None = None
) -> dict[str, Any]:
    """LocalCluster arguments sized to the machine: one single-threaded worker process per core.

    One thread per worker because each task (a decode, a network call) already uses its own native
    threads; memory is shared evenly unless `memory_limit` is given.
    """
    cpus = cpus or len(os.sched_getaffinity(0))
    memory = memory or psutil.virtual_memory().total
    n = cpus if cfg.n_workers == "auto" else cfg.n_workers
    limit: str | int = int(memory * 0.9 / n) if cfg.memory_limit == "auto" else cfg.memory_limit
    return {
        "n_workers": n,
        "threads_per_worker": cfg.threads_per_worker,
        "memory_limit": limit,
        "processes": True,
        "dashboard_address": cfg.dashboard_address,
        # Task failures are reported once, by the driver, in one line; not as worker tracebacks.
        "silence_logs": logging.CRITICAL,
    }


def visible_gpus() -> int:
    """CUDA devices this machine shows dask-cuda (0 without the gpu extra, a driver or a device)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return 0  # dask-cuda would count the empty string as one device
    try:
        from dask_cuda.utils import get_n_gpus
    except ImportError:
        return 0
    try:
        return int(get_n_gpus())
    except Exception:  # no NVML, no driver: no GPU to use
        return 0


def local_cuda_kwargs(cfg: ClusterConfig, gpus: int) -> dict[str, Any]:
    """LocalCUDACluster arguments: one worker per GPU (or `n_workers` of them), each pinned to its
    device by dask-cuda and advertising GPU=1, so that tasks asking for a GPU go one per device."""
    kw = local_cluster_kwargs(cfg, cpus=gpus)
    kw.pop("processes")
    return kw | {"resources": {"GPU": 1}}


def slurm_cluster(cfg: ClusterConfig) -> Any:
    """A dask-jobqueue SLURMCluster (not started jobs until scaled). Needs the `cluster` extra."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as e:
        raise ClusterError(
            "cluster.kind: slurm needs dask-jobqueue: pip install 'gigacrowd-pipeline[cluster]'"
        ) from e
    s = cfg.slurm
    directives = list(s.job_extra_directives)
    if s.gpus_per_job:
        directives.append(f"--gres=gpu:{s.gpus_per_job}")
    worker_extra: list[str] = []
    if s.gpus_per_job:
        # GPU tasks carry resources={"GPU": 1}; each worker process owns an equal share of the job's GPUs.
        worker_extra = ["--resources", f"GPU={max(1, s.gpus_per_job // s.processes)}"]
    return SLURMCluster(
        queue=s.queue,
        account=s.account,
        cores=s.cores,
        processes=s.processes,
        memory=s.memory,
        walltime=s.walltime,
        local_directory=s.local_directory,
        job_extra_directives=directives,
        job_script_prologue=[
            f'export {WORKER_ENV_VARIABLE}="{worker_env_literal()}"',
            *s.job_script_prologue,
        ],
        worker_extra_args=worker_extra,
        scheduler_options={"dashboard_address": cfg.dashboard_address},
    )


def kubernetes_cluster(cfg: ClusterConfig) -> Any:
    """A dask-kubernetes operator KubeCluster. Needs the `cluster` extra and a cluster with the operator."""
    try:
        from dask_kubernetes.operator import KubeCluster
    except ImportError as e:
        raise ClusterError(
            "cluster.kind: kubernetes needs dask-kubernetes: pip install 'gigacrowd-pipeline[cluster]'"
        ) from e
    k = cfg.kubernetes
    return KubeCluster(
        name=k.name, image=k.image, n_workers=k.n_workers, namespace=k.namespace,
        env={WORKER_ENV_VARIABLE: worker_env_literal()},
    )  # fmt: skip


def gpu_resources(client: Client) -> dict[str, int] | None:
    """{"GPU": 1} when some worker of the client's cluster advertises a GPU resource (SLURM GPU jobs,
    a LocalCUDACluster, workers started with --resources GPU=n), else None."""
    workers = client.scheduler_info().get("workers", {})
    return {"GPU": 1} if any(w.get("resources", {}).get("GPU") for w in workers.values()) else None


def _start_cluster(cfg: ClusterConfig) -> Any:
    """The cluster of cfg.kind local, slurm or kubernetes, started."""
    import dask

    if cfg.kind == "slurm":
        cluster = slurm_cluster(cfg)
        cluster.scale(jobs=cfg.slurm.jobs)
        return cluster
    if cfg.kind == "kubernetes":
        return kubernetes_cluster(cfg)
    # A local nanny reads the environment it spawns its worker with when it is made, and hands its
    # worker the config (the preload) when it spawns it.
    preload = [*dask.config.get("distributed.worker.preload", []), __name__]
    with dask.config.set(
        {"distributed.nanny.pre-spawn-environ": worker_environ(), "distributed.worker.preload": preload}
    ):
        gpus = visible_gpus() if cfg.gpus == "auto" else 0
        if gpus:
            from dask_cuda import LocalCUDACluster

            log.info("%d GPU(s): a LocalCUDACluster, one worker per GPU", gpus)
            return LocalCUDACluster(**local_cuda_kwargs(cfg, gpus))
        return LocalCluster(**local_cluster_kwargs(cfg))


@contextlib.contextmanager
def open_client(cfg: ClusterConfig) -> Iterator[Client]:
    """A Client on the configured cluster, closed (and a cluster we started, shut down) on exit."""
    cluster: Any = None
    try:
        if cfg.kind == "address":
            try:
                client = Client(cfg.address, timeout="20s")
            except (OSError, TimeoutError) as e:
                raise ClusterError(f"cannot reach the Dask scheduler at {cfg.address}: {e}") from e
        else:
            cluster = _start_cluster(cfg)
            client = Client(cluster)
        try:
            client.register_plugin(TrimAfterTask())
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
