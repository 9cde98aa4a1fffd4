"""pipeline/cluster.py: local cluster sizing and the SLURM job script (rendered, never submitted)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline.cluster import local_cluster_kwargs, slurm_cluster
from schemas.scene import ClusterConfig, SlurmConfig

GiB = 2**30


def test_local_auto_one_worker_per_cpu_memory_shared() -> None:
    kw = local_cluster_kwargs(ClusterConfig(), cpus=2, memory=8 * GiB)
    assert kw["n_workers"] == 2
    assert kw["threads_per_worker"] == 1
    assert kw["memory_limit"] == int(8 * GiB * 0.9 / 2)
    assert kw["processes"] is True
    assert kw["dashboard_address"] == ":0"


def test_local_auto_memory_split_follows_worker_count() -> None:
    kw = local_cluster_kwargs(ClusterConfig(n_workers=4), cpus=2, memory=10 * GiB)
    assert kw["n_workers"] == 4  # explicit count wins over the CPU count
    assert kw["memory_limit"] == int(10 * GiB * 0.9 / 4)
    # The workers never ask for more than the machine has.
    assert kw["n_workers"] * kw["memory_limit"] <= 10 * GiB


def test_local_explicit_values_are_respected() -> None:
    cfg = ClusterConfig(n_workers=3, threads_per_worker=2, memory_limit="4GB", dashboard_address=":8787")
    kw = local_cluster_kwargs(cfg, cpus=16, memory=64 * GiB)
    assert kw["n_workers"] == 3
    assert kw["threads_per_worker"] == 2
    assert kw["memory_limit"] == "4GB"
    assert kw["dashboard_address"] == ":8787"


def test_local_defaults_to_this_machine() -> None:
    kw = local_cluster_kwargs(ClusterConfig())
    assert kw["n_workers"] == len(os.sched_getaffinity(0))
    assert isinstance(kw["memory_limit"], int)
    assert kw["memory_limit"] > 0


def test_address_kind_without_address_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match=r"needs cluster\.address"):
        ClusterConfig(kind="address")
    with pytest.raises(ValidationError, match=r"needs cluster\.address"):
        ClusterConfig.model_validate({"kind": "address", "address": ""})
    assert ClusterConfig(kind="address", address="tcp://10.0.0.1:8786").address == "tcp://10.0.0.1:8786"


@pytest.fixture
def make_slurm() -> Iterator[Any]:
    pytest.importorskip("dask_jobqueue", reason="dev extra: pip install 'dask-jobqueue>=0.9,<0.10'")
    made: list[Any] = []

    def make(slurm: SlurmConfig) -> Any:
        cluster = slurm_cluster(ClusterConfig(kind="slurm", slurm=slurm))
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


def test_slurm_gpu_job_script(make_slurm: Any) -> None:
    cluster = make_slurm(SlurmConfig(gpus_per_job=2, memory="16GB", cores=4, queue="gpu", processes=2))
    script = cluster.job_script()
    lines = script.splitlines()
    assert "#SBATCH -p gpu" in lines
    assert "#SBATCH --gres=gpu:2" in lines
    assert "#SBATCH --cpus-per-task=4" in lines
    assert "#SBATCH --mem=15G" in lines  # 16 GB = 14.9 GiB, as SLURM counts
    assert "#SBATCH -t 04:00:00" in lines
    worker = next(line for line in lines if "dask_worker" in line)
    assert "--nworkers 2" in worker
    assert "--nthreads 2" in worker  # 4 cores shared by 2 processes
    assert "--memory-limit 7.45GiB" in worker  # 16 GB shared by 2 processes
    # Two GPUs for two worker processes: one GPU each.
    assert worker.endswith("--resources GPU=1")


def test_slurm_gpus_shared_between_fewer_processes(make_slurm: Any) -> None:
    cluster = make_slurm(SlurmConfig(gpus_per_job=4, processes=2))
    script = cluster.job_script()
    assert "#SBATCH --gres=gpu:4" in script.splitlines()
    assert "--resources GPU=2" in script


def test_slurm_cpu_job_has_no_gpu_directives(make_slurm: Any) -> None:
    cluster = make_slurm(
        SlurmConfig(
            account="proj42",
            walltime="01:30:00",
            job_extra_directives=["--exclusive"],
            job_script_prologue=["module load cuda"],
        )
    )
    script = cluster.job_script()
    lines = script.splitlines()
    assert "--gres" not in script
    assert "--resources" not in script
    assert "#SBATCH -A proj42" in lines
    assert "#SBATCH -t 01:30:00" in lines
    assert "#SBATCH --exclusive" in lines
    assert "module load cuda" in lines
    assert "#SBATCH --mem=30G" in lines  # default 32 GB
    assert "#SBATCH --cpus-per-task=8" in lines  # default 8 cores
