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
    CROWD_PROGRESS,
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
MAX_PASSES = 50  # passes of `run` the scene manifest and report.html remember


@dataclass
class RunSummary:
    scene: str
    scene_dir: Path
    done: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    # frame (or "name/" of an older layout's directory) -> why it left persons/: failed, not in the scene
    removed: dict[str, str] = field(default_factory=dict)
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


def _previous_passes(scene_dir: Path) -> list[dict[str, Any]]:
    """The passes an earlier run recorded in the scene manifest (none when it is missing or unreadable)."""
    import json

    try:
        passes = json.loads((scene_dir / MANIFEST).read_text()).get("passes", [])
    except (OSError, ValueError, AttributeError):
        return []
    return passes if isinstance(passes, list) else []


def _pass_record(summary: RunSummary, started: str) -> dict[str, Any]:
    """What one pass of `run` did: started, seconds, and frames per stage ran / skipped, failed, removed."""
    return {
        "started": started,
        "seconds": round(summary.seconds, 3),
        "ran": summary.done,
        "skipped": summary.skipped,
        "failed": summary.failed,
        "removed": summary.removed,
    }


def _write_scene_manifest(
    rs: ResolvedScene, scene_dir: Path, summary: RunSummary | None, started: str,
    passes: list[dict[str, Any]],
) -> None:  # fmt: skip
    """`<scene dir>/manifest.json`: the resolved config, versions, each frame's status and the passes
    of `run` so far (the last MAX_PASSES), this one included once it has finished."""
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
            "passes": (passes + ([_pass_record(summary, started)] if summary else []))[-MAX_PASSES:],
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


def _counted(fut: Any, bar: Any, n: int) -> Any:
    """`fut`, whose `n` work units (tiles, boxes) the stage's bar counts done when it finishes."""
    fut.add_done_callback(lambda _: bar.work(n))
    return fut


def _unit_record(res: dict[str, Any], stage_start: float) -> UnitRecord:
    """A frame's final unit as the driver received it, with `info.stage_s`: seconds from the stage's
    start to this frame's result, its fan-out tasks included (the record's own `seconds` are those of the
    final unit alone, e.g. the merge of the detect batches)."""
    rec = UnitRecord(**res)
    rec.info["stage_s"] = round(time.perf_counter() - stage_start, 3)
    return rec


def _record_people(futures: dict[Any, Frame], stage: str, bar: Any, manifests: dict[str, FrameManifest],
                   summary: RunSummary, stage_start: float) -> set[str]:  # fmt: skip
    """Record each frame's finished per-person stage unit; returns the frames done."""
    done = set()
    for f, res in _collect(futures, stage, bar, summary):
        rec = _unit_record(res, stage_start)
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
    rebuilt, t0 = set(), time.perf_counter()
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
            rec = _unit_record(res, t0)
            manifests[f.name].record(rec)
            summary.done.setdefault("ingest", []).append(f.name)
            if rec.info.get("reused"):
                manifests[f.name].follow_source(rec)
            else:
                rebuilt.add(f.name)
            if rec.info.get("converted"):  # e.g. an RGBA frame: the detector sees it over black
                log.warning("ingest: frame %s converted: %s", f.name, "; ".join(rec.info["converted"]))
            what = "unchanged (same sha256)" if rec.info.get("reused") else f"{rec.seconds:.1f} s"
            bar.advance(f"{f.name} {what}")
    return rebuilt


def _detect(client: Any, rs: ResolvedScene, todo: list[Frame], manifests: dict[str, FrameManifest],
            h: str, summary: RunSummary) -> set[str]:  # fmt: skip
    """Per frame: plan the tiles, detect in batches of tiles, merge into detections.parquet."""
    cfg = rs.scene.detect
    made, t0 = set(), time.perf_counter()
    with stage_bar("detect", len(todo), "tiles") as bar:
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
                _counted(client.submit(detect_batch_unit, store, tiles[i : i + n], cfg, pure=False), bar,
                         len(tiles[i : i + n]))
                for i in range(0, len(tiles), n)
            ]  # fmt: skip

        def merge(f: Frame, tiles: list[Tile], planned: int, how: dict[str, Any], done: list[Any]) -> None:
            m = manifests[f.name]
            merges[client.submit(detect_merge_unit, str(m.dir), f.name, tiles, cfg, h, _source(m), planned,
                                 how, *done, pure=False)] = f  # fmt: skip

        # Pruning: the coarse levels run first; their people's heights decide which fine tiles run.
        priors = {}
        for f, tiles in _collect(plans, "detect", bar, summary):
            store = str(manifests[f.name].dir / STORE_NAME)
            bar.add(len(tiles))
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
            bar.add(len(fine) - (planned - len(coarse)))  # the pruned tiles leave the count
            store = str(manifests[f.name].dir / STORE_NAME)
            merge(f, coarse + fine, planned, res, first + batches(store, fine))
        pending.clear()  # frames whose prior failed
        for f, res in _collect(merges, "detect", bar, summary):
            rec = _unit_record(res, t0)
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

    cfg, t0 = rs.scene.pose2d, time.perf_counter()
    with stage_bar("pose2d", len(todo), "boxes") as bar:
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
                    _counted(
                        client.submit(pose_batch_unit, store, boxes[i : i + n], cfg, context, pure=False),
                        bar,
                        len(boxes[i : i + n]),
                    )
                    for i in range(0, len(boxes), n)
                ]
                bar.add(len(boxes))
            det_ids = table.column("det_id").to_numpy()
            writes[client.submit(pose_write_unit, str(m.dir), f.name, det_ids, cfg, h, _source(m), *batches,
                                 pure=False)] = f  # fmt: skip
        done = _record_people(writes, "pose2d", bar, manifests, summary, t0)
    if cfg.overlay:
        summary.background += [client.submit(overlay_unit, str(manifests[f].dir), pure=False) for f in done]
    return done


def _regress(client: Any, rs: ResolvedScene, todo: list[Frame], manifests: dict[str, FrameManifest],
             h: str, summary: RunSummary) -> set[str]:  # fmt: skip
    """Per frame: SMPL for every detection in batches of boxes, then smpl.parquet (and meshes.png)."""
    from schemas.tables import detections_array, keypoints_array, read_table

    cfg, t0 = rs.scene.regress, time.perf_counter()
    with stage_bar("regress", len(todo), "boxes") as bar:
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
                _counted(
                    client.submit(
                        regress_batch_unit, store, boxes[i : i + n], kp[i : i + n], cfg, camera, pure=False
                    ),
                    bar,
                    len(boxes[i : i + n]),
                )
                for i in range(0, len(boxes), n)
            ]
            bar.add(len(boxes))
            writes[client.submit(regress_write_unit, str(m.dir), f.name, det_ids, cfg, camera, h, _source(m),
                                 *batches, pure=False)] = f  # fmt: skip
        return _record_people(writes, "regress", bar, manifests, summary, t0)


def _crowd(client: Any, rs: ResolvedScene, todo: list[Frame], manifests: dict[str, FrameManifest],
           h: str, summary: RunSummary) -> set[str]:  # fmt: skip
    """One reduce task per frame (on a GPU worker when the cluster has them), frames side by side; the
    bar counts people-evaluations, as the units report them (CROWD_PROGRESS events)."""
    gpu, t0 = gpu_resources(client), time.perf_counter()
    with stage_bar("crowd", len(todo), "people-steps") as bar:
        seen: dict[str, list[int]] = {}  # frame -> [total, done] as last reported

        def on_event(event: tuple[float, dict[str, Any]]) -> None:
            msg = event[1]
            total, done = seen.setdefault(msg["frame"], [0, 0])
            bar.add(max(msg["total"], msg["done"]) - total)
            bar.work(msg["done"] - done)
            seen[msg["frame"]] = [max(msg["total"], msg["done"]), msg["done"]]

        client.subscribe_topic(CROWD_PROGRESS, on_event)
        try:
            futures = {
                client.submit(crowd_unit, str(manifests[f.name].dir), f.name, rs.scene.crowd,
                              rs.scene.regress, rs.scene.seed, h, _source(manifests[f.name]), resources=gpu,
                              pure=False): f
                for f in todo
            }  # fmt: skip
            done = _record_people(futures, "crowd", bar, manifests, summary, t0)
        finally:
            client.unsubscribe_topic(CROWD_PROGRESS)
        bar.work(sum(total - d for total, d in seen.values()))  # events are sent at most every 0.5 s
        return done


def _write(client: Any, rs: ResolvedScene, todo: list[Frame], manifests: dict[str, FrameManifest],
           h: str, summary: RunSummary) -> set[str]:  # fmt: skip
    """Each frame's rows of the persons dataset."""
    use_crowd, t0 = rs.scene.crowd.enabled, time.perf_counter()
    with stage_bar("write", len(todo)) as bar:
        futures = {
            client.submit(write_unit, str(manifests[f.name].dir), rs.name, f.name, use_crowd, h,
                          _source(manifests[f.name]), pure=False): f
            for f in todo
        }  # fmt: skip
        done = _record_people(futures, "write", bar, manifests, summary, t0)
    if rs.scene.regress.meshes:
        for f in done:
            rows = persons_file(manifests[f].dir.parent / PERSONS_DIR, f)
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

    rows_file = persons_file(scene_dir / PERSONS_DIR, frame.name)
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


def _mirror_persons(rs: ResolvedScene, scene_dir: Path, summary: RunSummary) -> None:
    """Make the persons dataset hold exactly the scene's frames whose latest attempt succeeded: a frame
    that failed in this pass or is no longer in the scene loses its rows (one file each, unlinked, so a
    reader sees a frame's rows whole or not at all), and so does anything of an older layout."""
    from schemas.io import OLD_PREFIX, TMP_PREFIX, remove

    dataset = scene_dir / PERSONS_DIR
    if not dataset.is_dir():
        return
    keep = {persons_file(dataset, f.name) for f in rs.frames if f.name not in summary.failed}
    for path in sorted(dataset.iterdir()):
        if path in keep or path.name.startswith((TMP_PREFIX, OLD_PREFIX)):
            continue
        frame = path.stem if path.suffix == ".parquet" else f"{path.name}/"
        if frame in summary.failed:
            why = f"its latest attempt failed ({summary.failed[frame]})"
        elif path.suffix == ".parquet":
            why = "no longer in the scene"
        else:
            why = "a directory of an older layout of persons/"
        remove(path)
        summary.removed[frame] = why
        log.warning("persons/: removed %s: %s", path.name, why)


def _write_report(
    rs: ResolvedScene, scene_dir: Path, manifests: dict[str, FrameManifest], summary: RunSummary,
    passes: list[dict[str, Any]],
) -> None:  # fmt: skip
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
    atomic_write_text(scene_dir / REPORT, render(rs.name, frames, config, passes))


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


def output_problem(out: Path) -> str | None:
    """Why `output:` cannot hold runs (one line naming the key), or None. Probes by creating and
    removing a directory in the nearest existing ancestor: permission bits alone do not tell (root,
    read-only mounts, /proc)."""
    import os
    import tempfile

    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"output: {out} cannot be a directory: {existing} is a file"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=existing))
    except OSError as e:
        return f"output: cannot create directories in {existing} for {out} ({e.strerror or e})"
    return None


def preflight(rs: ResolvedScene) -> list[str]:
    """What would fail before any work: the output directory, a scene directory of another scene file,
    and each frame's header (missing, empty, unreadable, too large for ingest.max_megapixels, too small
    for the detector); one line each. Synthetic frames not generated yet are not probed."""
    from pipeline.config import ConfigError
    from tasks.detect import check_frame_size
    from tasks.ingest import open_image

    problems = [p for p in [output_problem(rs.output)] if p]
    try:
        _refuse_another_runs_directory(rs, rs.output / rs.name)
    except ConfigError as e:
        problems.append(str(e))
    for f in rs.frames:
        if f.synth is not None and not f.path.is_file():
            continue
        try:
            img, _, _ = open_image(f.path, rs.scene.ingest)
            if rs.scene.detect.enabled:
                check_frame_size((img.width, img.height), rs.scene.detect.min_person)
        except InputError as e:
            problems.append(f"frame {f.name}: {e}")
    return problems


def _log_dashboard(client: Any) -> None:
    """The Dask dashboard's link, when it can work: distributed serves it only with bokeh installed."""
    import importlib.util

    if importlib.util.find_spec("bokeh") is None:
        log.debug("no Dask dashboard: it needs bokeh>=3.1 (pip install 'bokeh>=3.1,<4')")
    else:
        log.info("Dask dashboard: %s", client.dashboard_link)


def _scene_dir(rs: ResolvedScene) -> Path:
    """The scene's run directory, made and swept of an interrupted run's partial outputs; a
    ConfigError when `output:` cannot hold it or it belongs to another scene file."""
    from pipeline.config import ConfigError

    scene_dir = inside(rs.output, rs.name)
    if problem := output_problem(rs.output):
        raise ConfigError(problem)
    _refuse_another_runs_directory(rs, scene_dir)
    scene_dir.mkdir(parents=True, exist_ok=True)
    for p in sweep_partials(scene_dir):
        log.info("removed the partial output of an interrupted run: %s", p)
    return scene_dir


def run_scene(rs: ResolvedScene) -> RunSummary:
    """Run every available stage of the scene; failed frames are reported, the others complete."""
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    scene_dir = _scene_dir(rs)
    summary = RunSummary(rs.name, scene_dir)
    passes = _previous_passes(scene_dir)
    _write_scene_manifest(rs, scene_dir, None, started, passes)

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
            _log_dashboard(client)
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
    _mirror_persons(rs, scene_dir, summary)
    summary.seconds = time.perf_counter() - t0
    _write_scene_manifest(rs, scene_dir, summary, started, passes)
    try:
        _write_report(rs, scene_dir, manifests, summary, _previous_passes(scene_dir))
    except Exception as e:  # a picture book must never fail a run whose results are written
        log.warning("report.html not written: %s", _one_line(e))
    return summary
