"""Faults during a run: a worker process killed in the middle of the fan-out changes nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from distributed import Client, LocalCluster

from pipeline.config import load_scene, resolve
from pipeline.run import RunSummary, run_scene

FAN_OUT = ("detect_batch_unit", "pose_batch_unit", "regress_batch_unit")


def _scene(tmp_path: Path, out: str, address: str) -> Path:
    doc = {
        "name": "f",
        "input": {"synthetic": {"people": 40, "width": 3072, "height": 1536, "seed": 4}},
        "output": out,
        "cluster": {"kind": "address", "address": address},
        "detect": {"tiles_per_task": 1},  # many small fan-out tasks: one is running when the worker dies
        "regress": {"boxes_per_task": 8, "meshes": False},
        "pose2d": {"overlay": False, "boxes_per_task": 8},
    }
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _persons(run: Path) -> list[dict[str, object]]:
    table = pq.read_table(next(run.glob("persons/scene=f/frame_id=*/part-0.parquet")))
    return sorted(table.to_pylist(), key=lambda r: r["person_id"])


def test_a_worker_killed_in_the_fan_out_changes_nothing(tmp_path: Path) -> None:
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        reference = _scene(tmp_path, "ref", cluster.scheduler_address)
        assert run_scene(resolve(load_scene(reference), reference)).ok

        killed: list[str] = []
        pids = client.run(os.getpid)

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
        disturbed = _scene(tmp_path, "hit", cluster.scheduler_address)
        summary: RunSummary = run_scene(resolve(load_scene(disturbed), disturbed))
        killer.join()
    assert killed, "no fan-out task was seen running"
    assert summary.ok, summary.failed
    ref, hit = _persons(tmp_path / "ref" / "f"), _persons(tmp_path / "hit" / "f")
    assert len(ref) >= 30 and hit == ref
