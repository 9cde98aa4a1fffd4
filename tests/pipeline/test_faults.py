"""Faults during a run: a worker process killed in the middle of the fan-out, and the whole run killed
and run again, both end with the persons table of an undisturbed run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from distributed import Client, LocalCluster

from pipeline.config import load_scene, resolve
from pipeline.run import RunSummary, run_scene

REPO = Path(__file__).resolve().parents[2]
FAN_OUT = ("detect_batch_unit", "pose_batch_unit", "regress_batch_unit")


def _scene(folder: Path, out: str, cluster: dict[str, Any]) -> Path:
    doc = {
        "name": "f",
        "input": {"synthetic": {"people": 40, "width": 3072, "height": 1536, "seed": 4}},
        "output": out,
        "cluster": cluster,
        "detect": {"tiles_per_task": 1},  # many small fan-out tasks: one is running when a worker dies
        "pose2d": {"overlay": False, "boxes_per_task": 8},
        "regress": {"boxes_per_task": 8, "meshes": False},
    }
    path = folder / f"{out}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _persons(run: Path) -> list[dict[str, object]]:
    table = pq.read_table(next(run.glob("persons/*.parquet")))
    return sorted(table.to_pylist(), key=lambda r: r["person_id"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    """The persons of an undisturbed run (local cluster of 2 worker processes)."""
    folder = tmp_path_factory.mktemp("reference")
    scene = _scene(folder, "ref", {"n_workers": 2})
    assert run_scene(resolve(load_scene(scene), scene)).ok
    rows = _persons(folder / "ref" / "f")
    assert len(rows) >= 30
    return rows


def test_a_worker_killed_in_the_fan_out_changes_nothing(
    tmp_path: Path, reference: list[dict[str, object]]
) -> None:
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        killed: list[str] = []

        def kill_one_worker_mid_task() -> None:
            deadline = time.monotonic() + 300
            while not killed and time.monotonic() < deadline:
                for addr, keys in client.processing().items():
                    if any(str(k).startswith(FAN_OUT) for k in keys):
                        os.kill(
                            pids[addr], signal.SIGKILL
                        )  # the worker process dies at once; its nanny restarts it
                        killed.append(addr)
                        return
                time.sleep(0.005)

        killer = threading.Thread(target=kill_one_worker_mid_task)
        killer.start()
        scene = _scene(tmp_path, "hit", {"kind": "address", "address": cluster.scheduler_address})
        summary: RunSummary = run_scene(resolve(load_scene(scene), scene))
        killer.join()
    assert killed, "no fan-out task was seen running"
    assert summary.ok, summary.failed
    assert _persons(tmp_path / "hit" / "f") == reference


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def test_a_deployed_scheduler_and_workers_one_killed_give_the_local_persons(
    tmp_path: Path, reference: list[dict[str, object]]
) -> None:
    """The cluster users deploy: `dask scheduler` and two `dask worker` processes (one advertising a
    GPU, so the crowd step's resource request meets a real scheduler), the project's worker
    environment exported as its SLURM script and Kubernetes manifest do; one worker process killed
    with SIGKILL in the fan-out (its nanny restarts it)."""
    import json
    import socket

    from pipeline.cluster import WORKER_ENV, WORKER_ENV_VARIABLE, TrimAfterTask, worker_env_literal

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    # as from a login shell with the documented export: this process's environment is not theirs
    # (in-process nannies of earlier tests set distributed's MALLOC_TRIM_THRESHOLD_ in it)
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env[WORKER_ENV_VARIABLE] = worker_env_literal()
    dask = str(Path(sys.executable).with_name("dask"))
    worker = [dask, "worker", address, "--nthreads", "1", "--memory-limit", "4GB", "--no-dashboard"]
    procs = [_start([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], env)]
    try:
        procs += [
            _start([*worker, "--name", "cpu"], env),
            _start([*worker, "--name", "gpu", "--resources", "GPU=1"], env),
        ]
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
            pids = client.run(os.getpid)
            # the nanny spawned each worker with the exported environment (WORKER_ENV); a lambda, as
            # os.environ.get would be pickled with this process's environment
            seen = client.run(lambda: {k: os.environ.get(k) for k in WORKER_ENV})
            assert list(seen.values()) == [WORKER_ENV, WORKER_ENV]
            names = {w["name"]: addr for addr, w in client.scheduler_info()["workers"].items()}
            killed: list[str] = []

            def kill_the_cpu_worker_mid_task() -> None:
                deadline = time.monotonic() + 300
                while not killed and time.monotonic() < deadline:
                    keys = client.processing().get(names["cpu"], [])
                    if any(str(k).startswith(FAN_OUT) for k in keys):
                        os.kill(pids[names["cpu"]], signal.SIGKILL)
                        killed.append(names["cpu"])
                        return
                    time.sleep(0.005)

            killer = threading.Thread(target=kill_the_cpu_worker_mid_task)
            killer.start()
            scene = _scene(tmp_path, "deployed", {"kind": "address", "address": address})
            summary = run_scene(resolve(load_scene(scene), scene))
            killer.join()
            # the run registered TrimAfterTask with the scheduler: the restarted worker has it too
            trims = client.run(lambda dask_worker: TrimAfterTask.name in dask_worker.plugins)
            assert list(trims.values()) == [True, True]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    assert killed, "no fan-out task was seen running"
    assert summary.ok, summary.failed
    assert _persons(tmp_path / "deployed" / "f") == reference
    frame = next(p for p in (tmp_path / "deployed" / "f").iterdir() if (p / "crowd.json").is_file())
    units = json.loads((frame / "manifest.json").read_text())["units"]
    assert units["crowd/frame"]["info"]["worker"] == "gpu"


def test_a_killed_run_resumes_and_ends_identical(tmp_path: Path, reference: list[dict[str, object]]) -> None:
    scene = _scene(tmp_path, "cut", {"n_workers": 2})
    cmd = [sys.executable, "-m", "pipeline", "run", str(scene)]
    # its own process group: the driver and its local cluster's worker processes die together
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    frame = tmp_path / "cut" / "f"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if list(frame.glob("*/keypoints.parquet")):  # pose2d done, regress under way
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(frame.glob("persons/**/*.parquet"))
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "already complete" in again.stdout  # ingest, detect and pose2d were not redone
    assert _persons(frame) == reference


_NO_NETWORK = """
import ipaddress, os, socket

_LOG = os.environ["NO_NETWORK_LOG"]


def _local(host):
    if host in ("localhost", "", None) or str(host).startswith("/"):
        return True
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False  # a name: resolving it is a lookup
    return ip.is_loopback or ip.is_unspecified  # 0.0.0.0: binding a listening socket, this machine


def _refuse(what):
    with open(_LOG, "a") as f:
        f.write(f"{os.getpid()} {what}\\n")
    raise OSError(f"network access blocked by the test: {what}")


_connect, _sendto, _getaddrinfo = socket.socket.connect, socket.socket.sendto, socket.getaddrinfo


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _refuse(f"connect {address}")
    return _connect(self, address)


def sendto(self, data, *args):
    address = args[-1]
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _refuse(f"sendto {address}")
    return _sendto(self, data, *args)


def getaddrinfo(host, *args, **kwargs):
    if not _local(host):
        _refuse(f"getaddrinfo {host}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.sendto, socket.getaddrinfo = connect, sendto, getaddrinfo
with open(_LOG + ".armed", "a") as f:
    f.write(f"{os.getpid()}\\n")
"""


def test_a_run_never_touches_the_network(tmp_path: Path, reference: list[dict[str, object]]) -> None:
    """Driver and every worker process refuse (and log) any connection or name lookup that is not
    loopback; the whole run still completes with the reference persons, and nothing was attempted."""
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(_NO_NETWORK)
    log = tmp_path / "attempts.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(guard), str(REPO)]), "NO_NETWORK_LOG": str(log)}
    scene = _scene(tmp_path, "offline", {"n_workers": 2})
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.getaddrinfo('pypi.org', 443)"],
                           env=env, capture_output=True, text=True)  # fmt: skip
    assert probe.returncode != 0 and "blocked by the test" in probe.stderr  # the guard is active
    log.unlink()
    Path(f"{log}.armed").unlink()
    run = subprocess.run([sys.executable, "-m", "pipeline", "run", str(scene)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert not log.exists(), log.read_text()
    # The guard was armed in the driver and in every worker process (and their nannies), not just here.
    assert len(set(Path(f"{log}.armed").read_text().split())) >= 3
    assert _persons(tmp_path / "offline" / "f") == reference
