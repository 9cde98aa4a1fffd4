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


def test_local_cuda_cluster_one_worker_per_gpu_each_advertising_one() -> None:
    from pipeline.cluster import local_cuda_kwargs

    kw = local_cuda_kwargs(ClusterConfig(), 4)
    assert kw["n_workers"] == 4 and kw["resources"] == {"GPU": 1} and "processes" not in kw
    assert local_cuda_kwargs(ClusterConfig(n_workers=2), 4)["n_workers"] == 2


def test_visible_gpus_without_dask_cuda_or_devices_is_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from pipeline.cluster import visible_gpus

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setitem(sys.modules, "dask_cuda.utils", None)  # not installed
    assert visible_gpus() == 0
    fake = types.ModuleType("dask_cuda.utils")
    fake.get_n_gpus = lambda: 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dask_cuda.utils", fake)
    assert visible_gpus() == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # dask-cuda itself would count one
    assert visible_gpus() == 0
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")

    def no_driver() -> int:
        raise RuntimeError("NVML Shared Library Not Found")

    fake.get_n_gpus = no_driver  # type: ignore[attr-defined]
    assert visible_gpus() == 0


def test_gpus_seen_make_a_cuda_cluster_whose_workers_take_gpu_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from distributed import LocalCluster

    import pipeline.cluster as cl

    made: dict[str, Any] = {}

    def fake_cuda_cluster(**kw: Any) -> LocalCluster:  # what dask-cuda adds is pinning to devices
        made.update(kw)
        return LocalCluster(n_workers=kw["n_workers"], processes=False, resources=kw["resources"],
                            dashboard_address=":0")  # fmt: skip

    module = types.ModuleType("dask_cuda")
    module.LocalCUDACluster = fake_cuda_cluster  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dask_cuda", module)
    monkeypatch.setattr(cl, "visible_gpus", lambda: 2)
    with cl.open_client(ClusterConfig()) as client:
        assert made["n_workers"] == 2 and made["resources"] == {"GPU": 1}
        assert cl.gpu_resources(client) == {"GPU": 1}
        assert client.submit(lambda: 7, resources={"GPU": 1}).result(timeout=30) == 7
    made.clear()
    with cl.open_client(ClusterConfig(gpus="none", n_workers=1)) as client:
        assert not made and cl.gpu_resources(client) is None


def test_kubernetes_manifest_gpu_workers_advertise_what_the_crowd_step_asks_for() -> None:
    import yaml

    from tests.conftest import REPO

    docs = list(yaml.safe_load_all((REPO / "deploy" / "kubernetes" / "gigacrowd-cluster.yaml").read_text()))
    cluster = next(d for d in docs if d["kind"] == "DaskCluster")
    gpu = next(d for d in docs if d["kind"] == "DaskWorkerGroup")
    assert gpu["spec"]["cluster"] == cluster["metadata"]["name"]
    args = gpu["spec"]["worker"]["spec"]["containers"][0]["args"]
    resource = args[args.index("--resources") + 1]
    assert resource == "GPU=1"
    # ... the resource gpu_resources() requests for the crowd step when such a worker exists
    assert gpu["spec"]["worker"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    mounts = {
        m["mountPath"]
        for spec in (cluster["spec"]["worker"]["spec"], gpu["spec"]["worker"]["spec"])
        for c in spec["containers"]
        for m in c["volumeMounts"]
    }
    assert mounts == {"/data"}  # every worker sees the run directory at one path
    ports = {p["port"] for p in cluster["spec"]["scheduler"]["service"]["ports"]}
    assert 8786 in ports


def _parsed(literal: str) -> dict[str, Any]:
    """What a nanny makes of WORKER_ENV_VARIABLE=literal: distributed's pre-spawn environment."""
    import dask.config

    from pipeline.cluster import WORKER_ENV_VARIABLE

    return dask.config.collect_env({WORKER_ENV_VARIABLE: literal})["distributed"]["nanny"][
        "pre_spawn_environ"
    ]


def test_local_workers_start_with_the_worker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Distributed's default MALLOC_TRIM_THRESHOLD_ (65536) is not what a local worker gets."""
    from pipeline.cluster import WORKER_ENV, TrimAfterTask, open_client

    assert WORKER_ENV["MALLOC_TRIM_THRESHOLD_"] is None and WORKER_ENV["OMP_NUM_THREADS"] == "1"
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)  # an earlier nanny of this process
    with open_client(ClusterConfig(gpus="none", n_workers=1)) as client:
        seen = client.run(lambda: {k: os.environ.get(k) for k in WORKER_ENV})
        trims = client.run(lambda dask_worker: TrimAfterTask.name in dask_worker.plugins)
    assert list(seen.values()) == [WORKER_ENV]
    assert list(trims.values()) == [True]


def test_trim_after_task_trims_when_a_task_ends_only() -> None:
    from pipeline.cluster import TrimAfterTask

    calls: list[int] = []
    plugin = TrimAfterTask()
    plugin.setup(None)
    assert plugin._trim is not None  # glibc here
    plugin._trim = calls.append
    for start, finish in [("waiting", "ready"), ("ready", "executing"), ("executing", "memory")]:
        plugin.transition("k", start, finish)
    plugin.transition("k", "executing", "error")
    assert calls == [0, 0]


def test_slurm_workers_start_with_the_worker_environment(make_slurm: Any) -> None:
    from pipeline.cluster import WORKER_ENV, WORKER_ENV_VARIABLE

    script = make_slurm(SlurmConfig(job_script_prologue=["module load cuda"])).job_script()
    export = next(line for line in script.splitlines() if line.startswith(f"export {WORKER_ENV_VARIABLE}="))
    assert _parsed(export.split("=", 1)[1].strip('"')) == WORKER_ENV
    lines = script.splitlines()
    assert lines.index(export) < lines.index("module load cuda")  # the user's prologue comes after


def test_kubernetes_workers_start_with_the_worker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    import yaml

    from pipeline.cluster import WORKER_ENV, WORKER_ENV_VARIABLE, kubernetes_cluster, worker_env_literal
    from tests.conftest import REPO

    docs = list(yaml.safe_load_all((REPO / "deploy" / "kubernetes" / "gigacrowd-cluster.yaml").read_text()))
    groups = [d["spec"]["worker"]["spec"] for d in docs if d["kind"] in ("DaskCluster", "DaskWorkerGroup")]
    for spec in groups:
        env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
        assert (
            env[WORKER_ENV_VARIABLE] == worker_env_literal()
            and _parsed(env[WORKER_ENV_VARIABLE]) == WORKER_ENV
        )
    made: dict[str, Any] = {}
    operator = types.ModuleType("dask_kubernetes.operator")
    operator.KubeCluster = lambda **kw: made.update(kw)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dask_kubernetes", types.ModuleType("dask_kubernetes"))
    monkeypatch.setitem(sys.modules, "dask_kubernetes.operator", operator)
    kubernetes_cluster(ClusterConfig(kind="kubernetes"))
    assert _parsed(made["env"][WORKER_ENV_VARIABLE]) == WORKER_ENV
