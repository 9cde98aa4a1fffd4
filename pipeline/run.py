"""The graph of a scene: stages in order, each a Dask fan-out over its units, with resume and a summary.

The driver decides what is already done from the manifests (no cluster is started when nothing is
left), submits the rest, records each unit as it completes and releases its future, so its memory does
not grow with the number of frames.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import as_completed

from pipeline.cluster import open_client
from pipeline.config import Frame, ResolvedScene, config_hash
from pipeline.progress import stage_bar
from pipeline.rundir import (
    MANIFEST,
    FrameManifest,
    UnitRecord,
    inside,
    package_versions,
    sweep_partials,
    write_json,
)
from pipeline.stages import ingest_unit, synth_unit
from schemas.scene import STAGES
from tasks import InputError

log = logging.getLogger("pipeline")

# Stages whose implementation has not landed yet: the run says so and does nothing in their place.
NOT_AVAILABLE = {
    "detect": "issue #4 (YOLOX over tiles)",
    "pose2d": "issue #4 (top-down 2D pose)",
    "regress": "issue #5 (CLIFF regression)",
    "crowd": "issue #6 (crowd finetune)",
    "write": "issue #7 (Parquet output)",
}


@dataclass
class RunSummary:
    scene: str
    scene_dir: Path
    done: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    not_available: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(err, InputError) else f"{type(err).__name__}: {first}"


def _write_scene_manifest(
    rs: ResolvedScene, scene_dir: Path, summary: RunSummary | None, started: str
) -> None:
    frames: dict[str, Any] = {}
    for f in rs.frames:
        status = "pending"
        if summary is not None:
            if f.name in summary.failed:
                status = f"failed: {summary.failed[f.name]}"
            elif any(f.name in v for v in summary.done.values()) or any(
                f.name in v for v in summary.skipped.values()
            ):
                status = "ok"
        frames[f.name] = {"path": str(f.path.resolve()), "status": status}
    write_json(
        scene_dir / MANIFEST,
        {
            "scene": rs.name,
            "scene_file": str(rs.source.resolve()) if rs.source else None,
            "config": rs.scene.model_dump(mode="json"),
            "config_hashes": {s: config_hash(getattr(rs.scene, s)) for s in STAGES},
            "versions": package_versions(),
            "frames": frames,
            "not_available": {s: NOT_AVAILABLE[s] for s in STAGES if s in NOT_AVAILABLE},
            "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z") if summary else None,
        },
    )


def _generate(client: Any, rs: ResolvedScene, frames: list[Frame], summary: RunSummary) -> None:
    """Generate the synthetic frames that are not cached yet, one Dask task each."""
    with stage_bar("synth", len(frames)) as bar:
        futures = {}
        for f in frames:
            assert f.synth is not None and f.body is not None
            fut = client.submit(
                synth_unit, str(f.path.parent), f.synth, f.body,
                key=f"synth-{rs.name}-{f.name}-{time.monotonic_ns()}", pure=False,
            )  # fmt: skip
            futures[fut] = f
        for fut in as_completed(list(futures)):
            f = futures.pop(fut)
            try:
                res = fut.result()
            except Exception as e:
                summary.failed[f.name] = _one_line(e)
                bar.advance(f"{f.name} FAILED")
                log.error("synth: frame %s failed: %s", f.name, summary.failed[f.name])
                continue
            finally:
                fut.release()
            summary.done.setdefault("synth", []).append(f.name)
            bar.advance(f"{f.name} {res['seconds']:.1f} s")


def run_scene(rs: ResolvedScene) -> RunSummary:
    """Run every available stage of the scene; failed frames are reported, the others complete."""
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    scene_dir = inside(rs.output, rs.name)
    scene_dir.mkdir(parents=True, exist_ok=True)
    for p in sweep_partials(scene_dir):
        log.info("removed the partial output of an interrupted run: %s", p)
    summary = RunSummary(rs.name, scene_dir)
    _write_scene_manifest(rs, scene_dir, None, started)

    cfg = rs.scene.ingest
    h = config_hash(cfg)
    manifests = {f.name: FrameManifest(inside(scene_dir, f.name), f.name, f.path) for f in rs.frames}
    to_make = [f for f in rs.frames if f.truth is not None and not f.truth.is_file()]
    todo = []
    for f in rs.frames:
        if f.truth is not None and f in to_make:
            todo.append(f)  # a synthetic frame made anew is new input, whatever its name did before
        elif manifests[f.name].done("ingest", "frame", h):
            summary.skipped.setdefault("ingest", []).append(f.name)
        else:
            todo.append(f)
    if summary.skipped.get("ingest"):
        log.info("ingest: %d frame(s) already done, skipped", len(summary.skipped["ingest"]))
    if todo:
        with open_client(rs.scene.cluster) as client:
            log.info("Dask dashboard: %s", client.dashboard_link)
            if to_make:
                _generate(client, rs, to_make, summary)
                todo = [f for f in todo if f.name not in summary.failed]
            with stage_bar("ingest", len(todo)) as bar:
                futures = {}
                for f in todo:
                    prev_sha = manifests[f.name].previous_sha256("ingest", "frame", h)
                    fut = client.submit(
                        ingest_unit,
                        str(f.path),
                        str(manifests[f.name].dir),
                        f.name,
                        cfg,
                        h,
                        prev_sha,
                        key=f"ingest-{rs.name}-{f.name}-{time.monotonic_ns()}",
                        pure=False,
                    )
                    futures[fut] = f
                for fut in as_completed(list(futures)):
                    f = futures.pop(fut)
                    try:
                        rec = UnitRecord(**fut.result())
                    except Exception as e:
                        summary.failed[f.name] = _one_line(e)
                        bar.advance(f"{f.name} FAILED")
                        log.error("ingest: frame %s failed: %s", f.name, summary.failed[f.name])
                        continue
                    finally:
                        fut.release()
                    manifests[f.name].record(rec)
                    summary.done.setdefault("ingest", []).append(f.name)
                    what = "unchanged (same sha256)" if rec.info.get("reused") else f"{rec.seconds:.1f} s"
                    bar.advance(f"{f.name} {what}")
    for stage in STAGES:
        if stage in NOT_AVAILABLE and getattr(rs.scene, stage).enabled:
            summary.not_available.append(stage)
            log.debug("%s: not available in this version (arrives with %s)", stage, NOT_AVAILABLE[stage])
    summary.seconds = time.perf_counter() - t0
    _write_scene_manifest(rs, scene_dir, summary, started)
    return summary
