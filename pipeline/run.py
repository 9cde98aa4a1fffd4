"""The graph of a scene: stages in order, each a Dask fan-out over its units, with resume and a summary.

The driver decides what is already done from the manifests (no cluster is started when nothing is
left), submits the rest, records each unit as it completes and releases its future, so its memory does
not grow with the number of frames.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from distributed import as_completed

from pipeline.cluster import gpu_resources, open_client
from pipeline.config import Frame, ResolvedScene, config_hash
from pipeline.progress import stage_bar
from pipeline.rundir import (
    FrameManifest,
    UnitRecord,
    inside,
    package_versions,
    sweep_partials,
    write_json,
)
from pipeline.stages import (
    crowd_unit,
    detect_batch_unit,
    detect_file_unit,
    detect_merge_unit,
    detect_plan_unit,
    detect_prior_unit,
    frame_camera_unit,
    ingest_unit,
    meshes_unit,
    overlay_unit,
    pose_batch_unit,
    pose_file_unit,
    pose_write_unit,
    regress_batch_unit,
    regress_write_unit,
    synth_unit,
    write_unit,
)
from schemas.layout import (
    DETECTIONS_FILE,
    KEYPOINTS_FILE,
    MANIFEST,
    PERSONS_DIR,
    PICTURES,
    REPORT,
    STAGES,
    STORE_NAME,
    persons_file,
)
from schemas.persons import PERSONS
from schemas.tables import DETECTIONS, KEYPOINTS, SMPL, contract_hash
from tasks import InputError
from tasks.detect import Tile, split_plan

log = logging.getLogger("pipeline")


@dataclass
class RunSummary:
    scene: str
    scene_dir: Path
    done: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    # Pictures drawn off the main path: futures the run waits for only before it ends.
    background: list[Any] = field(default_factory=list, repr=False)

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
            "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z") if summary else None,
        },
    )


def _generate(client: Any, rs: ResolvedScene, frames: list[Frame], summary: RunSummary) -> None:
    """Generate the synthetic frames that are not cached yet, one Dask task each."""
    with stage_bar("synth", len(frames)) as bar:
        futures = {}
        for f in frames:
            assert f.synth is not None
            fut = client.submit(
                synth_unit, str(f.path.parent), f.synth,
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


def _chain_hash(*hashes: str) -> str:
    """A stage's resume key: its own settings and those of every stage before it."""
    return hashlib.sha256("/".join(hashes).encode()).hexdigest()[:16]


def _source(manifest: FrameManifest) -> dict[str, Any]:
    """The frame's input identity as its ingest recorded it (later stages key on the same input)."""
    rec = manifest.units["ingest/frame"]
    return {k: rec[k] for k in ("input_sha256", "input_bytes", "input_mtime_ns")}


def _collect(
    futures: dict[Any, Frame], stage: str, bar: Any, summary: RunSummary
) -> Iterator[tuple[Frame, Any]]:
    """Yield (frame, result) as a stage's per-frame futures finish; failures go to the summary."""
    for fut in as_completed(list(futures)):
        f = futures.pop(fut)
        try:
            res = fut.result()
        except Exception as e:
            summary.failed[f.name] = f"{stage}: {_one_line(e)}"
            bar.advance(f"{f.name} FAILED")
            log.error("%s: frame %s failed: %s", stage, f.name, _one_line(e))
            continue
        finally:
            fut.release()
        yield f, res


def _record_people(futures: dict[Any, Frame], stage: str, bar: Any, manifests: dict[str, FrameManifest],
                   summary: RunSummary) -> set[str]:  # fmt: skip
    """Record each frame's finished per-person stage unit; returns the frames done."""
    done = set()
    for f, res in _collect(futures, stage, bar, summary):
        rec = UnitRecord(**res)
        manifests[f.name].record(rec)
        summary.done.setdefault(stage, []).append(f.name)
        done.add(f.name)
        bar.advance(f"{f.name} {rec.info['people']} people")
    return done


def _ingest(client: Any, rs: ResolvedScene, todo: list[Frame], manifests: dict[str, FrameManifest],
            h: str, summary: RunSummary) -> set[str]:  # fmt: skip
    """Ingest frames; returns those whose store was (re)built (a file whose bytes did not change keeps
    its store, and the later stages' records follow it to the file's new timestamp)."""
    cfg = rs.scene.ingest
    rebuilt = set()
    with stage_bar("ingest", len(todo)) as bar:
        futures = {}
        for f in todo:
            prev_sha = manifests[f.name].previous_sha256("ingest", "frame", h)
            fut = client.submit(
                ingest_unit, str(f.path), str(manifests[f.name].dir), f.name, cfg, h, prev_sha,
                key=f"ingest-{rs.name}-{f.name}-{time.monotonic_ns()}", pure=False,
            )  # fmt: skip
            futures[fut] = f
        for f, res in _collect(futures, "ingest", bar, summary):
            rec = UnitRecord(**res)
            manifests[f.name].record(rec)
            summary.done.setdefault("ingest", []).append(f.name)
            if rec.info.get("reused"):
                manifests[f.name].follow_source(rec)
            else:
                rebuilt.add(f.name)
            what = "unchanged (same sha256)" if rec.info.get("reused") else f"{rec.seconds:.1f} s"
            bar.advance(f"{f.name} {what}")
    return rebuilt


def _detect(client: Any, rs: ResolvedScene, todo: list[Frame], manifests: dict[str, FrameManifest],
            h: str, summary: RunSummary) -> set[str]:  # fmt: skip
    """Per frame: plan the tiles, detect in batches of tiles, merge into detections.parquet."""
    cfg = rs.scene.detect
    made = set()
    with stage_bar("detect", len(todo)) as bar:
        merges = {}  # frame's final future: a merge of its tile batches, or an import from detect.file
        imported = cfg.backend == "file"
        for f in todo if imported else []:
            m = manifests[f.name]
            merges[client.submit(detect_file_unit, str(m.dir), f.name, cfg, h, _source(m), pure=False)] = f
        plans = {}
        pending: dict[str, tuple[list[Tile], int, list[Any]]] = {}
        for f in [] if imported else todo:
            store = str(manifests[f.name].dir / STORE_NAME)
            plans[client.submit(detect_plan_unit, store, cfg, key=f"plan-{f.name}-{time.monotonic_ns()}")] = f

        def batches(store: str, tiles: list[Tile]) -> list[Any]:
            n = cfg.tiles_per_task
            return [
                client.submit(detect_batch_unit, store, tiles[i : i + n], cfg, pure=False)
                for i in range(0, len(tiles), n)
            ]

        def merge(f: Frame, tiles: list[Tile], planned: int, how: dict[str, Any], done: list[Any]) -> None:
            m = manifests[f.name]
            merges[client.submit(detect_merge_unit, str(m.dir), f.name, tiles, cfg, h, _source(m), planned,
                                 how, *done, pure=False)] = f  # fmt: skip

        # Pruning: the coarse levels run first; their people's heights decide which fine tiles run.
        priors = {}
        for f, tiles in _collect(plans, "detect", bar, summary):
            store = str(manifests[f.name].dir / STORE_NAME)
            coarse, fine = split_plan(tiles) if cfg.prune == "ground" else (tiles, [])
            first = batches(store, coarse)
            if not fine:
                merge(f, tiles, len(tiles), {}, first)
                continue
            prior = client.submit(detect_prior_unit, store, coarse, fine, cfg, *first, pure=False)
            priors[prior] = f
            pending[f.name] = (coarse, len(tiles), first)
        for f, res in _collect(priors, "detect", bar, summary):
            coarse, planned, first = pending.pop(f.name)
            fine = res.pop("tiles")
            store = str(manifests[f.name].dir / STORE_NAME)
            merge(f, coarse + fine, planned, res, first + batches(store, fine))
        pending.clear()  # frames whose prior failed
        for f, res in _collect(merges, "detect", bar, summary):
            rec = UnitRecord(**res)
            if rec.info["people"] == 0:
                # Not recorded as done: a rerun looks again (e.g. with a lower score_threshold).
                summary.failed[f.name] = (
                    f"detect: no people found in {rec.info['tiles']} tiles "
                    f"(score_threshold {cfg.score_threshold}, model {cfg.model})"
                )
                bar.advance(f"{f.name} NO PEOPLE")
                log.error("detect: frame %s: %s", f.name, summary.failed[f.name].removeprefix("detect: "))
                continue
            manifests[f.name].record(rec)
            summary.done.setdefault("detect", []).append(f.name)
            made.add(f.name)
            tiles = f"{rec.info['tiles']} tiles"
            if rec.info.get("why"):
                tiles += f" (not pruned: {rec.info['why']})"
            elif rec.info.get("prior"):
                tiles = f"{rec.info['tiles']} of {rec.info['planned_tiles']} tiles (ground-plane pruning)"
            bar.advance(f"{f.name} {rec.info['people']} people, {tiles}")
    return made


def _pose2d(client: Any, rs: ResolvedScene, todo: list[Frame], manifests: dict[str, FrameManifest],
            h: str, summary: RunSummary) -> set[str]:  # fmt: skip
    """Per frame: keypoints for every detection in batches of boxes, then keypoints.parquet."""
    from schemas.tables import detections_array, read_table

    cfg = rs.scene.pose2d
    with stage_bar("pose2d", len(todo)) as bar:
        writes = {}
        for f in todo:
            m = manifests[f.name]
            store = str(m.dir / STORE_NAME)
            table = read_table(m.dir / DETECTIONS_FILE, DETECTIONS)
            boxes = detections_array(table)[:, :4]
            n = cfg.boxes_per_task
            if cfg.backend == "file":
                batches = [client.submit(pose_file_unit, f.name, rs.scene.detect, pure=False)]
            else:
                context = boxes if cfg.mask_others else None
                batches = [
                    client.submit(pose_batch_unit, store, boxes[i : i + n], cfg, context, pure=False)
                    for i in range(0, len(boxes), n)
                ]
            det_ids = table.column("det_id").to_numpy()
            writes[client.submit(pose_write_unit, str(m.dir), f.name, det_ids, cfg, h, _source(m), *batches,
                                 pure=False)] = f  # fmt: skip
        done = _record_people(writes, "pose2d", bar, manifests, summary)
    if cfg.overlay:
        summary.background += [client.submit(overlay_unit, str(manifests[f].dir), pure=False) for f in done]
    return done


def _regress(client: Any, rs: ResolvedScene, todo: list[Frame], manifests: dict[str, FrameManifest],
             h: str, summary: RunSummary) -> set[str]:  # fmt: skip
    """Per frame: SMPL for every detection in batches of boxes, then smpl.parquet (and meshes.png)."""
    from schemas.tables import detections_array, keypoints_array, read_table

    cfg = rs.scene.regress
    with stage_bar("regress", len(todo)) as bar:
        writes = {}
        for f in todo:
            m = manifests[f.name]
            store = str(m.dir / STORE_NAME)
            det = read_table(m.dir / DETECTIONS_FILE, DETECTIONS)
            kp_table = read_table(m.dir / KEYPOINTS_FILE, KEYPOINTS)
            det_ids = det.column("det_id").to_numpy()
            if not np.array_equal(kp_table.column("det_id").to_numpy(), det_ids):
                summary.failed[f.name] = "regress: keypoints.parquet does not list the detections' det_ids"
                bar.advance(f"{f.name} FAILED")
                continue
            boxes, kp = detections_array(det)[:, :4], keypoints_array(kp_table)
            # a task, not the driver: estimating the focal reads every person's keypoints
            camera = client.submit(frame_camera_unit, store, rs.scene.camera, kp, pure=False)
            n = cfg.boxes_per_task
            batches = [
                client.submit(
                    regress_batch_unit,
                    store,
                    boxes[i : i + n],
                    kp[i : i + n],
                    cfg,
                    camera,
                    pure=False,
                )
                for i in range(0, len(boxes), n)
            ]
            writes[client.submit(regress_write_unit, str(m.dir), f.name, det_ids, cfg, camera, h, _source(m),
                                 *batches, pure=False)] = f  # fmt: skip
        return _record_people(writes, "regress", bar, manifests, summary)


def _crowd(client: Any, rs: ResolvedScene, todo: list[Frame], manifests: dict[str, FrameManifest],
           h: str, summary: RunSummary) -> set[str]:  # fmt: skip
    """One reduce task per frame (on a GPU worker when the cluster has them), frames side by side."""
    gpu = gpu_resources(client)
    with stage_bar("crowd", len(todo)) as bar:
        futures = {
            client.submit(crowd_unit, str(manifests[f.name].dir), f.name, rs.scene.crowd, rs.scene.regress,
                          rs.scene.seed, h, _source(manifests[f.name]), resources=gpu, pure=False): f
            for f in todo
        }  # fmt: skip
        return _record_people(futures, "crowd", bar, manifests, summary)


def _write(client: Any, rs: ResolvedScene, todo: list[Frame], manifests: dict[str, FrameManifest],
           h: str, summary: RunSummary) -> set[str]:  # fmt: skip
    """Each frame's rows of the persons dataset."""
    use_crowd = rs.scene.crowd.enabled
    with stage_bar("write", len(todo)) as bar:
        futures = {
            client.submit(write_unit, str(manifests[f.name].dir), rs.name, f.name, use_crowd, h,
                          _source(manifests[f.name]), pure=False): f
            for f in todo
        }  # fmt: skip
        done = _record_people(futures, "write", bar, manifests, summary)
    if rs.scene.regress.meshes:
        for f in done:
            rows = persons_file(manifests[f].dir.parent / PERSONS_DIR, rs.name, f)
            body = rs.scene.regress.body
            summary.background.append(
                client.submit(meshes_unit, str(manifests[f].dir), str(rows), body, pure=False)
            )
    return done


def _frame_metrics(rs: ResolvedScene, scene_dir: Path, frame: Frame, source: str) -> dict[str, float]:
    """GigaCrowd metrics of a frame's persons against its truth (synthetic frames), else {}."""
    if frame.truth is None or not frame.truth.is_file():
        return {}  # before the imports: the body model pulls in torch (~1.4 s, 180 MB in the driver)
    from schemas.truth import read_truth
    from tasks.evaluate import evaluate
    from tasks.export import gigacrowd_frame
    from tasks.models.body import body_fn

    rows_file = persons_file(scene_dir / PERSONS_DIR, rs.name, frame.name)
    if not rows_file.is_file():
        return {}
    import pyarrow.parquet as pq

    truth = read_truth(frame.truth)
    key = Path(source).name
    if key not in truth.frames:
        return {}
    rows = pq.read_table(rows_file)
    if len(rows) == 0:
        return {}
    report = evaluate({key: gigacrowd_frame(rows)}, {key: truth}, body_fn(rs.scene.regress.body))
    return dict(report.overall.means)


def _write_report(
    rs: ResolvedScene, scene_dir: Path, manifests: dict[str, FrameManifest], summary: RunSummary
) -> None:
    """`<scene dir>/report.html`: per frame the stages, timings, pictures and metrics; the config."""
    from schemas.io import atomic_write_text
    from tasks.report import FrameReport, render

    frames = []
    for f in rs.frames:
        m = manifests[f.name]
        status = f"failed: {summary.failed[f.name]}" if f.name in summary.failed else "ok"
        pictures = [f"{f.name}/{p}" for p in PICTURES if (m.dir / p).is_file()]
        metrics = _frame_metrics(rs, scene_dir, f, str(f.path)) if status == "ok" else {}
        frames.append(FrameReport(f.name, status, m.units, pictures, metrics))
    config = rs.scene.model_dump(mode="json", by_alias=True)
    atomic_write_text(scene_dir / REPORT, render(rs.name, frames, config, summary.seconds))


def _refuse_another_runs_directory(rs: ResolvedScene, scene_dir: Path) -> None:
    """A scene directory belongs to the scene file that first wrote it: another file with the same
    name and output would silently replace its frames and its persons dataset."""
    import json

    from pipeline.config import ConfigError

    try:
        previous = json.loads((scene_dir / MANIFEST).read_text()).get("scene_file")
    except (OSError, ValueError, AttributeError):
        return
    mine = str(rs.source.resolve()) if rs.source else None
    if previous and mine and previous != mine:
        raise ConfigError(
            f"{scene_dir} holds the run of {previous}; give this scene another name: or output:"
        )


def run_scene(rs: ResolvedScene) -> RunSummary:
    """Run every available stage of the scene; failed frames are reported, the others complete."""
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    scene_dir = inside(rs.output, rs.name)
    _refuse_another_runs_directory(rs, scene_dir)
    scene_dir.mkdir(parents=True, exist_ok=True)
    for p in sweep_partials(scene_dir):
        log.info("removed the partial output of an interrupted run: %s", p)
    summary = RunSummary(rs.name, scene_dir)
    _write_scene_manifest(rs, scene_dir, None, started)

    sc = rs.scene
    # Each stage's key holds the columns of the tables it writes: tables of another contract are remade.
    h_ingest = config_hash(sc.ingest)
    h_detect = _chain_hash(h_ingest, config_hash(sc.detect), contract_hash(DETECTIONS))
    h_pose = _chain_hash(h_detect, config_hash(sc.pose2d), contract_hash(KEYPOINTS))
    h_regress = _chain_hash(h_pose, config_hash(sc.regress), config_hash(sc.camera), contract_hash(SMPL))
    h_crowd = _chain_hash(h_regress, config_hash(sc.crowd), str(sc.seed))
    h_write = _chain_hash(
        h_crowd if sc.crowd.enabled else h_regress, config_hash(sc.write), contract_hash(PERSONS)
    )
    manifests = {f.name: FrameManifest(inside(scene_dir, f.name), f.name, f.path) for f in rs.frames}
    to_make = [f for f in rs.frames if f.truth is not None and not f.truth.is_file()]

    def pending(stage: str, h: str, enabled: bool, redo: set[str]) -> tuple[list[Frame], list[str]]:
        """(frames whose `stage` must run, frames it may skip): a frame runs unless it failed, or its
        stage completed with these settings on this unchanged input and no earlier stage redid it."""
        if not enabled:
            return [], []
        todo, skip = [], []
        for f in rs.frames:
            if f.name in summary.failed:
                continue
            if f.name not in redo and f not in to_make and manifests[f.name].done(stage, "frame", h):
                skip.append(f.name)
            else:
                todo.append(f)
        return todo, skip

    posed = sc.detect.enabled and sc.pose2d.enabled
    regressed = posed and sc.regress.enabled
    stages = [
        ("ingest", h_ingest, True, _ingest),
        ("detect", h_detect, sc.detect.enabled, _detect),
        ("pose2d", h_pose, posed, _pose2d),
        ("regress", h_regress, regressed, _regress),
        ("crowd", h_crowd, regressed and sc.crowd.enabled, _crowd),
        ("write", h_write, regressed and sc.write.enabled, _write),
    ]
    upfront = {name: pending(name, h, on, set()) for name, h, on, _ in stages}
    if not any(todo for todo, _ in upfront.values()):
        for name, (_, skip) in upfront.items():
            if skip:
                summary.skipped[name] = skip
    else:
        with open_client(sc.cluster) as client:
            log.info("Dask dashboard: %s", client.dashboard_link)
            if to_make:
                _generate(client, rs, to_make, summary)
            redo: set[str] = set()  # frames an earlier stage gave new outputs: new input for this one
            for name, h, on, fn in stages:
                # Judged now, not up front: the earlier stage may have re-read a frame.
                todo, skip = pending(name, h, on, redo)
                if skip:
                    summary.skipped[name] = skip
                    log.info("%s: %d frame(s) already done, skipped", name, len(skip))
                redo = fn(client, rs, todo, manifests, h, summary) if todo else set()
            for fut in as_completed(summary.background):
                try:
                    fut.result()
                except Exception as e:  # a picture must never fail a run whose results are written
                    log.warning("a picture was not drawn: %s", _one_line(e))
    summary.seconds = time.perf_counter() - t0
    _write_scene_manifest(rs, scene_dir, summary, started)
    try:
        _write_report(rs, scene_dir, manifests, summary)
    except Exception as e:  # a picture book must never fail a run whose results are written
        log.warning("report.html not written: %s", _one_line(e))
    return summary
