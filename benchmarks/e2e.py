"""The whole pipeline end to end on synthetic frames: per-stage wall time, throughput, memory, scaling
with workers, and a cost model that predicts a dataset's time on N workers (or GPUs).

    python benchmarks/e2e.py                               # 0.1 GP with 400 people, 1 and 2 workers
    python benchmarks/e2e.py --frames 16384x6144:400 25600x9728:1000 32768x15360:2000 --workers 1 2
    python benchmarks/e2e.py --model-only benchmarks/results/e2e.json --gpus 8 --dataset 100x0.6:1000
    python benchmarks/e2e.py --driver-rss 1 4 16 --frames 4096x2048:80   # driver RSS against frames

Per configuration (frame size x people, workers): a fresh scene directory (the synthetic frame itself is
rendered once into a cache and reused), `pipeline.run.run_scene` on a local cluster of that many
single-threaded worker processes; each stage's wall time is taken around the stage's function; the
driver's peak RSS (getrusage), the peak summed RSS of the worker processes (psutil, sampled every
0.2 s), tiles/s (detect), boxes/s (pose2d, regress), finetune iterations/s (crowd), and per stage the
CPU seconds of the driver and the workers per wall second (cores busy: on 2 cores, a stage whose one
worker already keeps 1.4 cores busy cannot speed up more than 2 / 1.4 with two) and their user and
system CPU seconds (system time is the kernel's: page faults, memory mapped and returned). The stage
times with one worker, divided by the work each did, are the per-unit costs of the cost model.

Cost model (printed, and in the JSON): a frame's time on one worker is
    ingest: a * GP + detect: b * tiles + pose2d: c * boxes + regress: d * boxes
    + crowd: e * work(people) + write: g * people,
with the crowd step's work that of the default method for that many people (crowd_work: people
trained in its steps' batches, plus a third of those it forwards without gradients);
a dataset of F frames on W workers (each one GPU, or one CPU core here) takes
    T(W) = max(sum of fan-out work / W + F * crowd / min(W, F), the longest single frame's crowd)
    + the run's overhead outside the stages (measured),
because ingest, detect, pose2d and regress split into many tasks (tiles, boxes) while each frame's
crowd step is ONE task: beyond W = F workers, the crowd steps stop shortening, and the run cannot be
shorter than its slowest frame's crowd step. The per-unit costs measured here are CPU costs; a GPU
divides the network stages by its own speed-up, which `--gpu-speedup` assumes (default 1: no GPU
measured, the prediction is then for CPU workers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from schemas.layout import CROWD_REPORT, MANIFEST, SYNTHETIC_DIR

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
CACHE = Path.home() / ".cache" / "gigacrowd-bench" / "e2e"
STAGES = ("ingest", "detect", "pose2d", "regress", "crowd", "write")


class _WorkerMemory:
    """Peak of the summed RSS of this process's child processes (the local cluster's workers), and the
    largest single one's, MB."""

    def __init__(self) -> None:
        import psutil

        self.me, self.peak, self.largest, self._stop = psutil.Process(), 0.0, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            total = 0
            for p in self.me.children(recursive=True):
                with contextlib.suppress(Exception):  # a worker that just exited
                    rss = p.memory_info().rss
                    total += rss
                    self.largest = max(self.largest, rss / 2**20)
            self.peak = max(self.peak, total / 2**20)
            self._stop.wait(0.2)

    def __enter__(self) -> _WorkerMemory:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()


def _cpu_times() -> tuple[float, float]:
    """(user, system) CPU seconds of this process and its live child processes (the local workers,
    from their own accounting)."""
    import psutil

    me = psutil.Process()
    user, system = me.cpu_times()[:2]
    for p in me.children(recursive=True):
        with contextlib.suppress(Exception):  # a process that just exited
            u, s = p.cpu_times()[:2]
            user, system = user + u, system + s
    return user, system


def run_one(
    width: int, height: int, people: int, workers: int, seed: int, score: bool = False
) -> dict[str, Any]:
    """One run on a synthetic frame (module docstring); with `score`, also its GigaCrowd metrics
    against the frame's truth."""
    import yaml

    import pipeline.run as run_module
    from pipeline.config import load_scene, resolve

    times: dict[str, float] = {}
    cores: dict[str, float] = {}  # CPU seconds of driver + workers per wall second, per stage
    cpu: dict[str, dict[str, float]] = {}  # user and system CPU seconds of driver + workers, per stage
    originals = {s: getattr(run_module, f"_{s}") for s in (*STAGES, "generate")}

    def timed(stage: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t, (u, s) = time.perf_counter(), _cpu_times()
            try:
                return originals[stage](*args, **kwargs)
            finally:
                times[stage] = round(time.perf_counter() - t, 2)
                u1, s1 = _cpu_times()
                cpu[stage] = {"user": round(u1 - u, 2), "sys": round(s1 - s, 2)}
                cores[stage] = round((u1 - u + s1 - s) / max(times[stage], 1e-3), 2)

        return wrapper

    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        doc = {
            "name": "e2e",
            "input": {"synthetic": {"people": people, "width": width, "height": height, "seed": seed}},
            "output": tmp,
            "cluster": {"n_workers": workers},
            "pose2d": {"overlay": False},
            "regress": {"meshes": False},
        }
        scene = Path(tmp) / "e2e.yaml"
        scene.write_text(yaml.safe_dump(doc))
        synth = Path(tmp) / SYNTHETIC_DIR
        cached = CACHE / f"{width}x{height}-{people}-{seed}"
        if cached.is_dir():  # the rendered frame is reused: rendering is not what is measured
            synth.symlink_to(cached, target_is_directory=True)
        for s in originals:
            setattr(run_module, f"_{s}", timed(s))
        try:
            with _WorkerMemory() as mem:
                t = time.perf_counter()
                summary = run_module.run_scene(resolve(load_scene(scene), scene))
                total = time.perf_counter() - t
        finally:
            for s, fn in originals.items():
                setattr(run_module, f"_{s}", fn)
        if not cached.is_dir() and synth.is_dir():
            import shutil

            shutil.copytree(synth, cached)
        if not summary.ok:
            raise SystemExit(f"run failed: {summary.failed}")
        metrics = _score(Path(tmp) / "e2e", synth) if score else {}
        frame = next(p for p in (Path(tmp) / "e2e").iterdir() if (p / CROWD_REPORT).is_file())
        manifest = json.loads((frame / MANIFEST).read_text())
        crowd = json.loads((frame / CROWD_REPORT).read_text())
        units = manifest.get("units", {})
        detect_info = next((u.get("info", {}) for k, u in units.items() if k.startswith("detect")), {})
        boxes = int(crowd["people"])
        tiles = int(detect_info.get("tiles", 0))
        planned = int(detect_info.get("planned_tiles", tiles))
        gp = width * height / 1e9
        return {
            "width": width, "height": height, "gigapixels": round(gp, 3), "people": people,
            "workers": workers, "boxes": boxes, "tiles": tiles, "planned_tiles": planned,
            "crowd_iterations": crowd["iterations"],
            "stage_seconds": {k: v for k, v in times.items() if k != "generate"},
            "stage_cores_busy": {k: v for k, v in cores.items() if k != "generate"},
            "stage_cpu_seconds": {k: v for k, v in cpu.items() if k != "generate"},
            "render_seconds": times.get("generate", 0.0),  # the synthetic frame, once; not counted
            "total_seconds": round(total - times.get("generate", 0.0), 2),
            "rates": {
                "ingest_mp_per_s": round(gp * 1000 / times["ingest"], 2),
                "detect_tiles_per_s": round(tiles / times["detect"], 2) if tiles else None,
                "pose2d_boxes_per_s": round(boxes / times["pose2d"], 2),
                "regress_boxes_per_s": round(boxes / times["regress"], 2),
                "crowd_iterations_per_s": round(crowd["iterations"] / times["crowd"], 2),
            },
            "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "workers_peak_rss_mb": round(mem.peak, 1),
            "largest_worker_peak_rss_mb": round(mem.largest, 1),
            "metrics": metrics,
        }  # fmt: skip


def _score(scene_dir: Path, synthetic: Path) -> dict[str, float]:
    """GigaCrowd metrics of a run's persons (its predict.json) against the truth of its frames."""
    from schemas.layout import TRUTH_FILE
    from schemas.truth import read_truth
    from tasks.evaluate import evaluate
    from tasks.export import gigacrowd_predictions
    from tasks.models.body import body_fn

    preds = gigacrowd_predictions(scene_dir)
    truths = {}
    for file in synthetic.rglob(TRUTH_FILE):
        truth = read_truth(file)
        truths |= dict.fromkeys(truth.frames, truth)
    report = evaluate(preds, {k: truths[k] for k in preds}, body_fn("builtin:neutral"))
    return {k: round(float(v), 4) for k, v in report.overall.means.items()}


def crowd_work(people: int) -> float:
    """The default crowd method's (global, auto steps) work on a frame of `people`, in people trained
    (forward and backward): its steps' batches, plus the people it forwards without gradients
    (everyone at the start, at each plane refresh and at the end) at a third of that (a backward pass
    costs about two forwards)."""
    from schemas.scene import GlobalConfig
    from tasks.crowd.global_ import global_steps

    cfg = GlobalConfig()
    steps = global_steps(people, cfg)
    return steps * min(cfg.batch, people) + people * (2 + steps // cfg.refresh) / 3


def unit_costs(row: dict[str, Any]) -> dict[str, float]:
    """Seconds per unit of work from a one-worker row: per GP, per tile, per box, per crowd step."""
    s = row["stage_seconds"]
    return {
        "ingest_s_per_gp": s["ingest"] / row["gigapixels"],
        "detect_s_per_tile": s["detect"] / max(row["tiles"], 1),
        "pose2d_s_per_box": s["pose2d"] / row["boxes"],
        "regress_s_per_box": s["regress"] / row["boxes"],
        "crowd_s_per_person_trained": s["crowd"] / crowd_work(row["boxes"]),
        "write_s_per_box": s["write"] / row["boxes"],
        # the share of the planned tiles that ran (the rest pruned by the height prior)
        "tiles_kept": row["tiles"] / row.get("planned_tiles", row["tiles"]),
        # outside the stages: cluster start-up, manifests, the report (measured, once per run)
        "overhead_s": max(row["total_seconds"] - sum(s.values()), 0.0),
    }


def planned_tiles(gp: float, aspect: float = 16 / 9) -> int:
    """The default tile plan's size for a frame of `gp` gigapixels, `aspect` width / height."""
    from schemas.scene import DetectConfig
    from tasks.detect import plan_for

    height = math.sqrt(gp * 1e9 / aspect)
    return len(plan_for((round(height * aspect), round(height)), DetectConfig()))


def predict(costs: dict[str, float], frames: int, gp: float, people: int, workers: int,
            gpu_speedup: float = 1.0, aspect: float = 16 / 9) -> dict[str, float]:  # fmt: skip
    """Seconds for `frames` frames of `gp` gigapixels (`aspect` width / height) with `people` people
    each on `workers` workers."""
    tiles = costs["tiles_kept"] * planned_tiles(gp, aspect)
    fan_out = frames * (
        costs["ingest_s_per_gp"] * gp
        + costs["detect_s_per_tile"] * tiles / gpu_speedup
        + (costs["pose2d_s_per_box"] + costs["regress_s_per_box"] / gpu_speedup) * people
        + costs["write_s_per_box"] * people
    )
    crowd_one = costs["crowd_s_per_person_trained"] * crowd_work(people) / gpu_speedup
    crowd_rounds = math.ceil(frames / min(workers, frames))
    total = max(fan_out / workers + crowd_rounds * crowd_one, crowd_one) + costs["overhead_s"]
    return {
        "seconds": round(total, 1), "fan_out_seconds": round(fan_out / workers, 1),
        "crowd_seconds": round(crowd_rounds * crowd_one, 1), "crowd_one_frame_seconds": round(crowd_one, 1),
    }  # fmt: skip


def check(costs: dict[str, float], row: dict[str, Any]) -> dict[str, Any]:
    """The model's prediction for a measured run `row` (e.g. benchmarks/scale.py's 1-gigapixel frame of
    5000 people on 2 workers) against what was measured: the frame's size and people found, its tiles
    as the model plans them (the run's own count beside them)."""
    aspect = row["width"] / row["height"]
    pred = predict(costs, 1, row["gigapixels"], row["boxes"], row["workers"], aspect=aspect)
    return {
        "frame": f"{row['width']}x{row['height']}, {row['people']} people ({row['boxes']} found), "
        f"{row['workers']} workers",
        "measured_s": row["total_seconds"], "predicted_s": pred["seconds"],
        "ratio": round(pred["seconds"] / row["total_seconds"], 2),
        "measured_crowd_s": row["stage_seconds"]["crowd"],
        "predicted_crowd_s": pred["crowd_one_frame_seconds"],
        "tiles": row["tiles"],
        "tiles_modelled": round(costs["tiles_kept"] * planned_tiles(row["gigapixels"], aspect)),
    }  # fmt: skip


def cost_model(
    rows: list[dict[str, Any]], gpus: int, dataset: tuple[int, float, int], gpu_speedup: float,
    checks: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:  # fmt: skip
    """Per-unit costs of the largest one-worker row, the dataset's predicted time on `gpus` workers and
    the scaling curve; and the prediction for each measured run of `checks` next to its measurement."""
    one = [r for r in rows if r["workers"] == 1]
    if not one:
        raise SystemExit("the cost model needs a one-worker measurement")
    base = max(one, key=lambda r: r["gigapixels"])  # the largest frame measured
    costs = unit_costs(base)
    frames, gp, people = dataset
    curve = {
        w: predict(costs, frames, gp, people, w, gpu_speedup) for w in (1, 2, 4, 8, 16, 32, 64, 100, 128, 256)
    }
    t1 = curve[1]["seconds"]
    return {
        "measured_on": {k: base[k] for k in ("width", "height", "people", "workers")},
        "unit_costs": {k: round(v, 6) for k, v in costs.items()},
        "gpu_speedup_assumed": gpu_speedup,
        "dataset": {"frames": frames, "gigapixels_per_frame": gp, "people_per_frame": people},
        "prediction": {"workers": gpus, **predict(costs, frames, gp, people, gpus, gpu_speedup)},
        "scaling": {
            w: {"seconds": v["seconds"], "speedup": round(t1 / v["seconds"], 2)} for w, v in curve.items()
        },
        "stops_scaling": "beyond one worker per frame the crowd steps (one task per frame) no longer "
        "shorten; the floor is the slowest frame's crowd step plus the driver's overhead",
        "checks": [check(costs, r) for r in checks],
    }  # fmt: skip


# VmHWM, not ru_maxrss: Linux carries the parent's RSS at fork into a child's ru_maxrss across exec.
_DRIVER = """
import runpy, sys
sys.argv = ["pipeline", "run", sys.argv[1]]
try:
    runpy.run_module("pipeline", run_name="__main__")
finally:
    hwm = next(ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmHWM"))
    print("DRIVER_PEAK_KB", hwm, flush=True)
"""


def driver_rss(counts: list[int], size: str, workers: int, seed: int) -> list[dict[str, Any]]:
    """Peak RSS of the driver process (`python -m pipeline run`, its own process each time) for runs
    of N frames: N names for one synthetic frame's JPEG (hard links), each a frame of its own."""
    import os
    import subprocess

    import yaml
    from common import cached_frame

    w, h, people = _frames(size)
    image, _ = cached_frame(CACHE / f"driver-{w}x{h}-{people}-{seed}", people, w, h, seed)
    rows = []
    for n in counts:
        with tempfile.TemporaryDirectory() as tmp:
            frames = []
            for i in range(n):
                link = Path(tmp) / "frames" / f"f{i:04d}.jpg"
                link.parent.mkdir(exist_ok=True)
                os.link(image, link)
                frames.append(str(link))
            doc = {"name": "rss", "input": {"frames": frames}, "output": f"{tmp}/out",
                   "cluster": {"n_workers": workers}, "pose2d": {"overlay": False},
                   "regress": {"meshes": False}}  # fmt: skip
            scene = Path(tmp) / "rss.yaml"
            scene.write_text(yaml.safe_dump(doc))
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _DRIVER, str(scene)], capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
            seconds = time.perf_counter() - t
            if out.returncode != 0:
                raise SystemExit(f"run of {n} frames failed: {out.stderr[-2000:]}")
            kb = int(next(ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith("DRIVER_PEAK_KB")))
        row = {"frames": n, "size": size, "workers": workers, "seconds": round(seconds, 1),
               "driver_peak_rss_mb": round(kb / 1024, 1)}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def _frames(text: str) -> tuple[int, int, int]:
    size, people = text.split(":")
    w, h = size.split("x")
    return int(w), int(h), int(people)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", nargs="+", default=["16384x6144:400"], help="WxH:people, each measured")
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--gpus", type=int, default=8, help="workers (GPUs) of the cost model's prediction")
    ap.add_argument("--dataset", default="100x0.6:1000", help="FRAMESxGIGAPIXELS:PEOPLE for the prediction")
    ap.add_argument("--gpu-speedup", type=float, default=1.0, dest="gpu_speedup")
    ap.add_argument("--model-only", type=Path, dest="model_only", help="a previous e2e.json: model only")
    ap.add_argument(
        "--driver-rss", nargs="+", type=int, dest="driver_rss", metavar="N",
        help="instead: the driver's peak RSS for runs of N frames each (--frames' first size)",
    )  # fmt: skip
    ap.add_argument(
        "--check", nargs="+", type=Path, default=[RESULTS / "scale-project.json"],
        help="measured runs (benchmarks/scale.py's JSON) the model's prediction is compared with",
    )  # fmt: skip
    ap.add_argument(
        "--worker-env", choices=("project", "dask"), default="project", dest="worker_env",
        help="the workers' environment: pipeline/cluster.WORKER_ENV, or Distributed's own (for comparison)",
    )  # fmt: skip
    args = ap.parse_args()
    if args.worker_env == "dask":
        import pipeline.cluster

        pipeline.cluster.WORKER_ENV = {}  # nothing over Distributed's pre-spawn environment
    if args.driver_rss:
        rows = driver_rss(args.driver_rss, args.frames[0], max(args.workers), args.seed)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "e2e_driver_rss.json").write_text(json.dumps(rows, indent=2) + "\n")
        return 0
    if args.model_only:
        rows = json.loads(args.model_only.read_text())["rows"]
    else:
        rows = []
        for spec in args.frames:
            w, h, people = _frames(spec)
            for n in args.workers:
                row = run_one(w, h, people, n, args.seed)
                rows.append(row)
                print(json.dumps(row), flush=True)
        for r in rows:  # scaling of the fan-out stages against one worker on the same frame
            ref = next(
                (
                    q
                    for q in rows
                    if q["workers"] == 1 and q["width"] == r["width"] and q["people"] == r["people"]
                ),
                None,
            )
            if ref is not None and r is not ref:
                r["speedup_vs_1_worker"] = {
                    s: round(ref["stage_seconds"][s] / r["stage_seconds"][s], 2) for s in STAGES
                } | {"total": round(ref["total_seconds"] / r["total_seconds"], 2)}  # fmt: skip
    frames_s, rest = args.dataset.split("x")
    gp_s, people_s = rest.split(":")
    checks = [json.loads(f.read_text()) for f in args.check if f.exists()]
    model = cost_model(rows, args.gpus, (int(frames_s), float(gp_s), int(people_s)), args.gpu_speedup, checks)
    print(json.dumps(model, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "e2e.json").write_text(json.dumps({"rows": rows, "cost_model": model}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
