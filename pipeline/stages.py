"""Stage units as run on a worker: read the unit's inputs, call the tasks/ function that does the work,
write its output atomically, return a plain dict (a rundir.UnitRecord) for the driver to record in the
frame manifest. File names come from schemas/layout.py.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.rundir import UnitRecord, atomic_output
from schemas.layout import (
    BIRDSEYE_FILE,
    CROWD_FILE,
    CROWD_REPORT,
    DETECTIONS_FILE,
    KEYPOINTS_FILE,
    MESHES_FILE,
    OVERLAY_FILE,
    PERSONS_DIR,
    SIDEVIEW_FILE,
    SMPL_FILE,
    STORE_NAME,
)
from schemas.scene import CameraConfig, CrowdConfig, DetectConfig, IngestConfig, Pose2dConfig, RegressConfig
from schemas.tables import (
    DETECTIONS,
    KEYPOINTS,
    SMPL,
    detections_array,
    keypoints_array,
    read_table,
    write_parquet,
)
from tasks.files import file_sha256
from tasks.ingest import ingest_image, open_levels
from tasks.pyramid import ChunkCache

if TYPE_CHECKING:
    from schemas.scene import SyntheticConfig
    from tasks.camera import FrameCamera
    from tasks.detect import Tile
    from tasks.regress import Regression


def _levels(store: str | Path) -> list[ChunkCache]:
    """A frame's pyramid, each level behind a chunk cache (neighbouring crops share chunks)."""
    return [ChunkCache(lv) for lv in open_levels(Path(store))]


def _image_wh(store: str | Path) -> tuple[int, int]:
    h, w = open_levels(Path(store))[0].shape[:2]
    return w, h


def _boxes_and_keypoints(fdir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A frame's boxes (N, 4) px and keypoints (N, 17, 3) px + confidence, det_id order."""
    boxes = detections_array(read_table(fdir / DETECTIONS_FILE, DETECTIONS))[:, :4]
    return boxes, keypoints_array(read_table(fdir / KEYPOINTS_FILE, KEYPOINTS))


# The Dask event topic a crowd unit reports its progress on: {"frame", "done", "total"} in
# people-evaluations, at most every PROGRESS_EVERY_S seconds (the driver's progress bar).
CROWD_PROGRESS, PROGRESS_EVERY_S = "gigacrowd-crowd-progress", 0.5


def _this_worker() -> Any:
    """The Dask worker running this task, None outside one."""
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:
        return None


def _progress_events(frame: str) -> Any:
    """A crowd_frame progress callback that sends CROWD_PROGRESS events from this worker (None outside
    a Dask worker)."""
    if (worker := _this_worker()) is None:
        return None
    last = [0.0]

    def send(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            worker.log_event(CROWD_PROGRESS, {"frame": frame, "done": done, "total": total})

    return send


def _worker_name() -> str | None:
    """The name of the Dask worker running this task (None outside a worker): the crowd step's record
    says where the reduce ran (a GPU worker when the cluster has one)."""
    worker = _this_worker()
    return None if worker is None else str(worker.name)


def _frame_record(
    stage: str, chain_hash: str, outputs: list[str], t0: float, info: dict[str, Any], source: dict[str, Any]
) -> dict[str, Any]:
    """The manifest record of a per-frame unit that wrote `outputs`."""
    rec = UnitRecord(
        stage=stage, unit="frame", config_hash=chain_hash, outputs=outputs,
        seconds=time.perf_counter() - t0, info=info, **source,
    )  # fmt: skip
    return asdict(rec)


def ingest_unit(
    src: str, frame_dir: str, frame: str, cfg: IngestConfig, config_hash: str, previous_sha256: str | None
) -> dict[str, Any]:
    """Ingest one frame into `<frame_dir>/image.zarr`.

    When a store from an earlier run exists with the same settings and the file's bytes are unchanged
    (same sha256, only its timestamp moved), the store is kept and nothing is decoded.
    """
    t0 = time.perf_counter()
    st = os.stat(src)
    final = Path(frame_dir) / STORE_NAME
    base = {
        "stage": "ingest", "unit": "frame", "config_hash": config_hash, "input_bytes": st.st_size,
        "input_mtime_ns": st.st_mtime_ns, "outputs": [STORE_NAME],
    }  # fmt: skip
    if previous_sha256 and final.is_dir():
        sha = file_sha256(Path(src))
        if sha == previous_sha256:
            rec = UnitRecord(
                **base, input_sha256=sha, seconds=time.perf_counter() - t0, info={"reused": True}
            )
            return asdict(rec)
    with atomic_output(final) as tmp:
        info = ingest_image(Path(src), tmp, cfg, frame)
    rec = UnitRecord(
        **base, input_sha256=info.sha256, seconds=time.perf_counter() - t0,
        info={"width": info.width, "height": info.height, "loader": info.loader, "converted": info.converted},
    )  # fmt: skip
    return asdict(rec)


def synth_unit(frame_dir: str, cfg: SyntheticConfig) -> dict[str, Any]:
    """Generate one synthetic frame (image + truth.json) into `frame_dir`, all or nothing."""
    from tasks.synth import synthesize_frame

    t0 = time.perf_counter()
    final = Path(frame_dir)
    with atomic_output(final) as tmp:
        image, truth = synthesize_frame(cfg, tmp)
    return {
        "image": str(final / image.name),
        "truth": str(final / truth.name),
        "seconds": time.perf_counter() - t0,
    }


def detect_plan_unit(store: str, cfg: DetectConfig) -> list[Tile]:
    """The frame's tile plan for the configured detector's input size."""
    from tasks.detect import plan_for

    return plan_for(_image_wh(store), cfg)


def detect_batch_unit(store: str, tiles: list[Tile], cfg: DetectConfig) -> np.ndarray:
    """Detections (N, 8) (tasks.detect.DET_COLUMNS) on a batch of tiles of one frame's pyramid."""
    from tasks.detect import detect_batch

    return detect_batch(_levels(store), tiles, cfg)


def detect_prior_unit(
    store: str, coarse: list[Tile], fine: list[Tile], cfg: DetectConfig, *batches: np.ndarray
) -> dict[str, Any]:
    """The fine tiles worth running after the coarse ones: pruned by the ground-plane height prior
    fitted to the coarse batches' detections, or all of them when no prior can be fitted; {"tiles",
    "prior" (a dict or None), "why" (why none)}."""
    from tasks.detect import prune_fine

    return prune_fine(list(batches), coarse, fine, _image_wh(store), cfg)


def detect_merge_unit(
    frame_dir: str, frame: str, tiles: list[Tile], cfg: DetectConfig, chain_hash: str, source: dict[str, Any],
    planned: int, pruning: dict[str, Any], *batches: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    """Merge a frame's batch detections across tiles and levels; write `detections.parquet`.

    `tiles` are those that ran (of `planned`); `pruning` says how: {"prior": the ground-plane height
    prior as a dict or None, "why": why none} (empty when pruning is off).
    """
    from schemas.tables import detections_table
    from tasks.detect import merge_batches

    t0 = time.perf_counter()
    kept, raw = merge_batches(list(batches), tiles, cfg, _image_wh(Path(frame_dir) / STORE_NAME))
    write_parquet(detections_table(frame, kept), Path(frame_dir) / DETECTIONS_FILE)
    info = {"tiles": len(tiles), "planned_tiles": planned, **pruning, "raw": raw, "people": len(kept)}
    return _frame_record("detect", chain_hash, [DETECTIONS_FILE], t0, info, source)


def detect_file_unit(
    frame_dir: str, frame: str, cfg: DetectConfig, chain_hash: str, source: dict[str, Any]
) -> dict[str, Any]:
    """Detections imported from detect.file into `detections.parquet` (level 0, tile_id -1)."""
    from schemas.tables import detections_table
    from tasks.imports import imported_detections

    t0 = time.perf_counter()
    rows = imported_detections(cfg, frame)
    write_parquet(detections_table(frame, rows), Path(frame_dir) / DETECTIONS_FILE)
    info = {"tiles": 0, "raw": len(rows), "people": len(rows)}
    return _frame_record("detect", chain_hash, [DETECTIONS_FILE], t0, info, source)


def pose_file_unit(frame: str, detect: DetectConfig) -> np.ndarray:
    """The keypoints of detect.file for a frame, row for row with its imported detections."""
    from tasks.imports import imported_keypoints

    return imported_keypoints(detect, frame)


def pose_batch_unit(
    store: str, boxes: np.ndarray, cfg: Pose2dConfig, context: np.ndarray | None = None
) -> np.ndarray:
    """Keypoints (N, 17, 3) x, y full-res pixels, confidence for boxes (N, 4) of one frame; context
    (M, 4): the frame's boxes, painted out of each crop (pose2d.mask_others)."""
    from tasks.models.registry import load_pose_model
    from tasks.pose2d import estimate

    model = load_pose_model(cfg.backend, cfg.model)
    return estimate(_levels(store), boxes, model, cfg.crop_scale, context)


def pose_write_unit(
    frame_dir: str, frame: str, det_ids: np.ndarray, cfg: Pose2dConfig, chain_hash: str,
    source: dict[str, Any], *batches: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    """Write `keypoints.parquet` for a frame from its pose batches."""
    from schemas.tables import keypoints_table
    from tasks.pose2d import concat_keypoints

    t0 = time.perf_counter()
    kp = concat_keypoints(list(batches))
    write_parquet(keypoints_table(frame, det_ids, kp), Path(frame_dir) / KEYPOINTS_FILE)
    return _frame_record("pose2d", chain_hash, [KEYPOINTS_FILE], t0, {"people": len(kp)}, source)


def overlay_unit(frame_dir: str) -> str:
    """`overlay.png` of a frame's detections, keypoints and ids (det_id, the persons table's person_id):
    a picture, drawn off the main path."""
    from tasks.draw import overlay, thumbnail, write_png

    fdir = Path(frame_dir)
    det = read_table(fdir / DETECTIONS_FILE, DETECTIONS)
    keypoints = keypoints_array(read_table(fdir / KEYPOINTS_FILE, KEYPOINTS))
    picture = overlay(
        *thumbnail(open_levels(fdir / STORE_NAME)), detections_array(det), keypoints,
        ids=det.column("det_id").to_numpy(),
    )  # fmt: skip
    write_png(fdir / OVERLAY_FILE, picture)
    return str(fdir / OVERLAY_FILE)


def meshes_unit(frame_dir: str, persons_file: str, body_spec: str) -> str:
    """`meshes.png` of a frame's final people (its rows of the persons dataset), off the main path."""
    import pyarrow.parquet as pq

    from tasks.draw import frame_meshes, write_png
    from tasks.models.body import BodyModel

    fdir = Path(frame_dir)
    picture = frame_meshes(
        open_levels(fdir / STORE_NAME), pq.read_table(persons_file), BodyModel.load(body_spec)
    )
    write_png(fdir / MESHES_FILE, picture)
    return str(fdir / MESHES_FILE)


def frame_camera_unit(store: str, camera: CameraConfig, keypoints: np.ndarray) -> FrameCamera:
    """The scene's camera for a frame (tasks/camera.frame_camera); keypoints (N, 17, 3) px."""
    from tasks.camera import frame_camera

    return frame_camera(_image_wh(store), camera, keypoints)


def regress_batch_unit(
    store: str, boxes: np.ndarray, keypoints: np.ndarray, cfg: RegressConfig, camera: FrameCamera
) -> Regression:
    """SMPL for boxes (N, 4) with keypoints (N, 17, 3) of one frame, with the regressor's identity."""
    from tasks.models.registry import load_regressor
    from tasks.regress import regress

    levels = _levels(store)
    height, width = levels[0].shape[:2]
    model = load_regressor(cfg.backend, cfg.model, cfg.device)
    r = regress(levels, boxes, keypoints, model, (width, height), camera.focal, camera.pp)
    return replace(r, regressor=f"{cfg.backend}:{model.name}", regressor_sha256=model.sha256)


def regress_write_unit(
    frame_dir: str, frame: str, det_ids: np.ndarray, cfg: RegressConfig, camera: FrameCamera,
    chain_hash: str, source: dict[str, Any], *batches: Regression,
) -> dict[str, Any]:  # fmt: skip
    """Write `smpl.parquet` for a frame from its regression batches; `camera` goes into its metadata."""
    from schemas.tables import smpl_table
    from tasks.regress import frame_smpl

    t0 = time.perf_counter()
    fdir = Path(frame_dir)
    smpl = frame_smpl(list(batches), det_ids, *_boxes_and_keypoints(fdir), cfg.body, camera)
    write_parquet(smpl_table(frame, smpl), fdir / SMPL_FILE)
    return _frame_record("regress", chain_hash, [SMPL_FILE], t0, {"people": len(det_ids)}, source)


def crowd_unit(
    frame_dir: str, frame: str, cfg: CrowdConfig, regress: RegressConfig, seed: int, chain_hash: str,
    source: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Finetune the regressor on one frame's people: `crowd.parquet` (the smpl contract, after
    finetuning) and `crowd.json` (ground plane, camera, loss curve, network evaluations)."""
    from schemas.io import atomic_write_text
    from schemas.tables import read_smpl, smpl_table
    from tasks.crowd import crowd_frame

    t0 = time.perf_counter()
    fdir = Path(frame_dir)
    boxes, keypoints = _boxes_and_keypoints(fdir)
    before = read_smpl(fdir / SMPL_FILE)
    result = crowd_frame(
        _levels(fdir / STORE_NAME), boxes, keypoints, before, cfg, regress, seed, _progress_events(frame)
    )
    write_parquet(smpl_table(frame, result.smpl), fdir / CROWD_FILE)
    report = result.report | {"seconds": round(time.perf_counter() - t0, 2)}
    atomic_write_text(fdir / CROWD_REPORT, json.dumps(report) + "\n")
    info = {"people": len(boxes), "worker": _worker_name()}
    return _frame_record("crowd", chain_hash, [CROWD_FILE, CROWD_REPORT], t0, info, source)


def write_unit(
    frame_dir: str, scene: str, frame: str, use_crowd: bool, chain_hash: str, source: dict[str, Any]
) -> dict[str, Any]:
    """The frame's rows of the persons dataset `<scene dir>/persons/` (after the crowd step when it
    ran, else straight from the regressor), and its ground pictures."""
    from tasks.draw import ground_pictures, write_png
    from tasks.export import frame_persons, write_frame

    t0 = time.perf_counter()
    fdir = Path(frame_dir)
    det, kp = read_table(fdir / DETECTIONS_FILE, DETECTIONS), read_table(fdir / KEYPOINTS_FILE, KEYPOINTS)
    smpl = read_table(fdir / (CROWD_FILE if use_crowd else SMPL_FILE), SMPL)
    rows = frame_persons(det, kp, smpl, scene, frame, chain_hash)
    path = write_frame(fdir.parent / PERSONS_DIR, frame, rows.table, rows.metadata)
    outputs = [str(Path("..") / path.relative_to(fdir.parent))]
    if rows.plane is not None and len(rows.table) >= 3:
        pictures = ground_pictures(rows.table, rows.plane, _image_wh(fdir / STORE_NAME))
        for name, picture in zip((BIRDSEYE_FILE, SIDEVIEW_FILE), pictures, strict=True):
            write_png(fdir / name, picture)
            outputs.append(name)
    return _frame_record("write", chain_hash, outputs, t0, {"people": len(rows.table)}, source)
