"""The crowd step inside a Dask worker against the same code outside Dask, and against the bare work.

    python benchmarks/workers.py                          # 400 people, 8192x4096, 3 repeats
    python benchmarks/workers.py --env dask project none  # worker environments compared

One frame (synthetic, rendered once into benchmarks/results/frames/ and reused) runs through the
pipeline up to regress. Then, per repeat, the crowd stage unit (pipeline/stages.crowd_unit, the default global
method, its `auto` steps) is timed three ways, each in a fresh process so that no run warms
another's caches:
- `worker (ENV)`: submitted to a LocalCluster of one single-threaded worker whose nanny spawns it with
  the environment ENV: `dask` = distributed's own pre-spawn environment (MALLOC_TRIM_THRESHOLD_=65536,
  one OpenMP/MKL/OpenBLAS thread), `project` = pipeline/cluster.WORKER_ENV and its TrimAfterTask
  plugin, `none` = nothing set;
- `outside`: the same call in a plain Python process with one torch thread (a worker's);
- `bare`: as many steps of the network, the body model forward and backward and the AdamW step over
  batches of 50 (tasks/crowd/method.data_terms; no plane, no scheduler, no first and final passes over
  everyone, no tables), one torch thread.
Each reports wall seconds and the process's own user and system CPU seconds around the call (getrusage
of the worker's process for `worker`), after the modules are imported and the networks loaded (once
per process). Ratios are against `outside` and `bare` of the same repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _timed(fn: Any, *args: Any) -> dict[str, float]:
    """Wall, user and system seconds of fn(*args) in this process."""
    import resource

    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn(*args)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall": round(time.perf_counter() - t0, 3),
        "user": round(r1.ru_utime - r0.ru_utime, 3),
        "sys": round(r1.ru_stime - r0.ru_stime, 3),
    }


def _crowd_args(frame_dir: str) -> tuple[Any, ...]:
    from schemas.scene import CrowdConfig, RegressConfig

    return (frame_dir, Path(frame_dir).name, CrowdConfig(), RegressConfig(), 0, "bench", _source())


def _source() -> dict[str, Any]:
    return {"input_sha256": "-", "input_bytes": 0, "input_mtime_ns": 0}


def crowd_in_process(frame_dir: str) -> dict[str, float]:
    """The crowd unit called in this process (a worker's task, or a plain process), once its modules
    are imported and its networks loaded (a worker's steady state: both are cached per process)."""
    from pipeline.stages import crowd_unit
    from schemas.scene import RegressConfig
    from tasks.crowd import crowd_frame  # noqa: F401  (the imports a first task pays)
    from tasks.models.body import BodyModel
    from tasks.models.registry import load_regressor

    BodyModel.load(RegressConfig().body)
    load_regressor("embedded")
    return _timed(crowd_unit, *_crowd_args(frame_dir))


def bare(frame_dir: str) -> dict[str, float]:
    """The global method's steps of network + body forward/backward + AdamW on batches of 50."""
    import torch

    from pipeline.stages import _boxes_and_keypoints
    from schemas.layout import SMPL_FILE, STORE_NAME
    from schemas.scene import CrowdConfig, RegressConfig
    from schemas.tables import read_smpl
    from tasks.crowd.global_ import global_steps
    from tasks.crowd.method import begin, data_terms
    from tasks.crowd.people import crowd_inputs
    from tasks.ingest import open_levels
    from tasks.models.body import BodyModel
    from tasks.models.registry import load_regressor

    fdir = Path(frame_dir)
    boxes, kp = _boxes_and_keypoints(fdir)
    before = read_smpl(fdir / SMPL_FILE)
    focal, pp = float(before.rows.focal[0]), (float(before.rows.cx[0]), float(before.rows.cy[0]))
    people, model = crowd_inputs(
        load_regressor("embedded"), open_levels(fdir / STORE_NAME), boxes, kp, focal, pp
    )
    body = BodyModel.load(RegressConfig().body)
    cfg = CrowdConfig().global_
    gen = torch.Generator().manual_seed(0)
    import copy

    work = copy.deepcopy(model)
    net, first = begin(work, people, body)
    opt = torch.optim.AdamW(work.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def steps() -> None:
        for _ in range(global_steps(len(people), cfg)):
            idx = torch.randperm(len(people), generator=gen)[: cfg.batch]
            loss = data_terms(net(idx), idx, people, first.rotmat, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return _timed(steps)


def _subprocess(what: str, frame_dir: str) -> dict[str, float]:
    """`what` (crowd_in_process or bare) in a fresh Python process with one torch thread."""
    code = (
        "import json, sys, torch; torch.set_num_threads(1); sys.path.insert(0, 'benchmarks'); "
        "import workers; "
        f"print(json.dumps(workers.{what}({frame_dir!r})))"
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def in_worker(frame_dir: str, env: str) -> dict[str, float]:
    """The crowd unit as a task of a fresh one-worker LocalCluster spawned with environment `env`."""
    import dask
    from distributed import Client, LocalCluster

    from pipeline.cluster import WORKER_ENV, TrimAfterTask

    environ = {
        "dask": dask.config.get("distributed.nanny.pre-spawn-environ"),
        "project": WORKER_ENV,
        "none": {},
    }[env]
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k in ("MALLOC_TRIM_THRESHOLD_",)}
    try:
        with (
            dask.config.set({"distributed.nanny.pre-spawn-environ": environ}),
            LocalCluster(
                n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(lambda: __import__("torch").set_num_threads(1))
            if env == "project":  # what pipeline/cluster.open_client adds to every worker
                client.register_plugin(TrimAfterTask())
            return client.submit(crowd_in_process, frame_dir, pure=False).result()
    finally:
        os.environ.update(saved)


def prepare(people: int, size: str, seed: int, tmp: Path) -> Path:
    """A frame directory with image.zarr, detections, keypoints and smpl tables (no crowd step)."""
    import yaml

    from pipeline.config import load_scene, resolve
    from pipeline.run import run_scene

    w, h = (int(v) for v in size.split("x"))
    cache = RESULTS / "frames" / f"{size}-{people}-{seed}"
    doc = {
        "name": "w", "output": str(tmp),
        "input": {"synthetic": {
            "people": people, "width": w, "height": h, "seed": seed, "cache": str(cache),
        }},
        "cluster": {"n_workers": 1}, "crowd": {"enabled": False}, "write": {"enabled": False},
        "pose2d": {"overlay": False}, "regress": {"meshes": False},
    }  # fmt: skip
    scene = tmp / "w.yaml"
    scene.write_text(yaml.safe_dump(doc))
    summary = run_scene(resolve(load_scene(scene), scene))
    if not summary.ok:
        raise SystemExit(f"the frame failed: {summary.failed}")
    return next(p for p in (tmp / "w").iterdir() if p.is_dir() and p.name != "persons")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=400)
    ap.add_argument("--size", default="8192x4096")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--env", nargs="+", default=["dask", "project"], choices=["dask", "project", "none"])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        frame = str(prepare(args.people, args.size, args.seed, Path(tmp)))
        for r in range(args.repeats):
            row: dict[str, Any] = {"repeat": r, "outside": _subprocess("crowd_in_process", frame)}
            row["bare"] = _subprocess("bare", frame)
            for env in args.env:
                row[f"worker ({env})"] = in_worker(frame, env)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\ncrowd unit (global, auto steps), {args.people} people {args.size}: wall s (user, sys)")
    for row in rows:
        o, b = row["outside"]["wall"], row["bare"]["wall"]
        cells = [
            f"{k} {v['wall']:.1f} ({v['user']:.1f}, {v['sys']:.1f})" for k, v in row.items() if k != "repeat"
        ]
        ratios = [
            f"{k}: {v['wall'] / o:.2f}x outside, {v['wall'] / b:.2f}x bare"
            for k, v in row.items()
            if k.startswith("worker")
        ]
        print(" | ".join(cells) + "\n    " + "; ".join(ratios))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "workers.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
