"""Stage units as run on a worker: call the pure function in tasks/, make its output atomic.

Each returns a plain dict (a rundir.UnitRecord) for the driver to record in the frame manifest.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.rundir import UnitRecord, atomic_output
from schemas.image_store import STORE_NAME
from schemas.scene import CameraConfig, CrowdConfig, DetectConfig, IngestConfig, Pose2dConfig, RegressConfig
from tasks.files import file_sha256
from tasks.ingest import ingest_image, open_levels
from tasks.pyramid import ChunkCache

if TYPE_CHECKING:
    from tasks.detect import Tile
    from tasks.synth import SynthConfig

DETECTIONS_FILE = "detections.parquet"
KEYPOINTS_FILE = "keypoints.parquet"
OVERLAY_FILE = "overlay.png"
SMPL_FILE = "smpl.parquet"
MESHES_FILE = "meshes.png"
CROWD_FILE = "crowd.parquet"
CROWD_REPORT = "crowd.json"


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
        "stage": "ingest",
        "unit": "frame",
        "config_hash": config_hash,
        "input_bytes": st.st_size,
        "input_mtime_ns": st.st_mtime_ns,
        "outputs": [STORE_NAME],
    }
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
        **base,
        input_sha256=info.sha256,
        seconds=time.perf_counter() - t0,
        info={"width": info.width, "height": info.height, "loader": info.loader, "converted": info.converted},
    )
    return asdict(rec)


def synth_unit(frame_dir: str, cfg: SynthConfig, body: str) -> dict[str, Any]:
    """Generate one synthetic frame (image + truth.json) into `frame_dir`, all or nothing."""
    from tasks.models.body import BodyModel
    from tasks.poses import load_bank
    from tasks.synth import synthesize

    t0 = time.perf_counter()
    final = Path(frame_dir)
    with atomic_output(final) as tmp:
        image, truth = synthesize(cfg, tmp, BodyModel.load(body), load_bank())
    return {
        "image": str(final / image.name),
        "truth": str(final / truth.name),
        "seconds": time.perf_counter() - t0,
    }


def detect_plan_unit(store: str, cfg: DetectConfig) -> list[Tile]:
    """The frame's tile plan for the configured detector's input size."""
    from tasks.detect import tile_plan
    from tasks.models.registry import load_detector

    h, w = open_levels(Path(store))[0].shape[:2]
    size = load_detector(cfg.backend, cfg.model, cfg.input_size, cfg.device).size
    return tile_plan(
        h, w, size, person_px=cfg.person_px, margin=cfg.margin, max_person=cfg.max_person,
        min_person=cfg.min_person,
    )  # fmt: skip


def detect_batch_unit(store: str, tiles: list[Tile], cfg: DetectConfig) -> np.ndarray:
    """Detections (N, 8) (tasks.detect.DET_COLUMNS) on a batch of tiles of one frame's pyramid."""
    from tasks.detect import detect_tiles, read_tile
    from tasks.models.registry import load_detector

    levels = [ChunkCache(lv) for lv in open_levels(Path(store))]
    model = load_detector(cfg.backend, cfg.model, cfg.input_size, cfg.device)

    def detector(images: list[np.ndarray]) -> list[np.ndarray]:
        return model(images, score_thr=cfg.score_threshold, nms_iou=cfg.nms_iou)

    return detect_tiles(tiles, lambda t: read_tile(levels, t), detector)


def detect_prior_unit(
    store: str, coarse: list[Tile], fine: list[Tile], cfg: DetectConfig, *batches: np.ndarray
) -> dict[str, Any]:
    """The fine tiles worth running after the coarse ones: pruned by the ground-plane height prior
    fitted to the coarse batches' detections, or all of them when no prior can be fitted."""
    from tasks.detect import DET_COLUMNS, coarse_prior, prune_tiles

    raw = np.concatenate(batches) if batches else np.zeros((0, len(DET_COLUMNS)))
    h, w = open_levels(Path(store))[0].shape[:2]
    prior, why = coarse_prior(
        raw, coarse, (h, w), margin=cfg.margin, min_people=cfg.prune_min_people,
        min_tolerance=cfg.prune_tolerance,
    )  # fmt: skip
    kept = fine if prior is None else prune_tiles(fine, prior, margin=cfg.margin)
    return {"tiles": kept, "prior": None if prior is None else asdict(prior), "why": why}


def detect_merge_unit(
    frame_dir: str, frame: str, tiles: list[Tile], cfg: DetectConfig, chain_hash: str, source: dict[str, Any],
    planned: int, pruning: dict[str, Any], *batches: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    """Merge a frame's batch detections across tiles and levels; write `detections.parquet`.

    `tiles` are those that ran (of `planned`); `pruning` says how: {"prior": the ground-plane height
    prior as a dict or None, "why": why none} (empty when pruning is off).
    """
    from schemas.tables import detections_table, write_parquet
    from tasks.detect import DET_COLUMNS, merge

    t0 = time.perf_counter()
    raw = np.concatenate(batches) if batches else np.zeros((0, len(DET_COLUMNS)))
    kept = merge(raw, tiles, margin=cfg.margin, nms_iou=cfg.nms_iou)
    write_parquet(detections_table(frame, kept), Path(frame_dir) / DETECTIONS_FILE)
    info = {"tiles": len(tiles), "planned_tiles": planned, **pruning, "raw": len(raw), "people": len(kept)}
    rec = UnitRecord(
        stage="detect", unit="frame", config_hash=chain_hash, outputs=[DETECTIONS_FILE],
        seconds=time.perf_counter() - t0, info=info, **source,
    )  # fmt: skip
    return asdict(rec)


def _imported(cfg: DetectConfig, frame: str) -> Any:
    from tasks import InputError
    from tasks.imports import read_boxes_cached

    assert cfg.file is not None
    found = read_boxes_cached(
        Path(cfg.file), cfg.file_format, Path(cfg.file_images) if cfg.file_images else None
    )
    if frame not in found:
        raise InputError(f"frame {frame!r} is not in the detections file {cfg.file}")
    return found[frame].above(cfg.score_threshold)


def detect_file_unit(
    frame_dir: str, frame: str, cfg: DetectConfig, chain_hash: str, source: dict[str, Any]
) -> dict[str, Any]:
    """Detections imported from detect.file into `detections.parquet` (level 0, tile_id -1)."""
    from schemas.tables import detections_table, write_parquet

    t0 = time.perf_counter()
    boxes = _imported(cfg, frame).boxes
    rows = np.concatenate([boxes, np.zeros((len(boxes), 1)), np.full((len(boxes), 1), -1.0)], 1)
    write_parquet(detections_table(frame, rows), Path(frame_dir) / DETECTIONS_FILE)
    rec = UnitRecord(
        stage="detect", unit="frame", config_hash=chain_hash, outputs=[DETECTIONS_FILE],
        seconds=time.perf_counter() - t0, info={"tiles": 0, "raw": len(boxes), "people": len(boxes)},
        **source,
    )  # fmt: skip
    return asdict(rec)


def pose_file_unit(frame: str, detect: DetectConfig) -> np.ndarray:
    """The keypoints of detect.file for a frame, row for row with its imported detections."""
    from tasks import InputError

    imp = _imported(detect, frame)
    if imp.keypoints is None:
        raise InputError(f"pose2d.backend 'file': {detect.file} holds no keypoints")
    return imp.keypoints.astype(np.float32)


def pose_batch_unit(store: str, boxes: np.ndarray, cfg: Pose2dConfig) -> np.ndarray:
    """Keypoints (N, 17, 3) x, y full-res pixels, confidence for boxes (N, 4) of one frame."""
    from tasks.models.registry import load_pose_model
    from tasks.pose2d import estimate

    levels = [ChunkCache(lv) for lv in open_levels(Path(store))]
    return estimate(levels, boxes, load_pose_model(cfg.backend, cfg.model), cfg.crop_scale)


def pose_write_unit(
    frame_dir: str, frame: str, det_ids: np.ndarray, cfg: Pose2dConfig, chain_hash: str,
    source: dict[str, Any], *batches: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    """Write `keypoints.parquet` for a frame from its pose batches."""
    from schemas.tables import keypoints_table, write_parquet

    t0 = time.perf_counter()
    kp = np.concatenate(batches) if batches else np.zeros((0, 17, 3), np.float32)
    write_parquet(keypoints_table(frame, det_ids, kp), Path(frame_dir) / KEYPOINTS_FILE)
    return _frame_record("pose2d", chain_hash, [KEYPOINTS_FILE], t0, len(kp), source)


def overlay_unit(frame_dir: str) -> str:
    """`overlay.png` of a frame's detections and keypoints (a picture, drawn off the main path)."""
    from schemas.tables import DETECTIONS, KEYPOINTS, detections_array, keypoints_array, read_table

    fdir = Path(frame_dir)
    boxes = detections_array(read_table(fdir / DETECTIONS_FILE, DETECTIONS))
    write_overlay(fdir, boxes, keypoints_array(read_table(fdir / KEYPOINTS_FILE, KEYPOINTS)))
    return str(fdir / OVERLAY_FILE)


def meshes_unit(frame_dir: str, persons_file: str, body_spec: str) -> str:
    """`meshes.png` of a frame's final people (its rows of the persons dataset), off the main path."""
    import pyarrow.parquet as pq

    from tasks.export import person_meshes
    from tasks.models.body import BodyModel

    rows = pq.read_table(persons_file)
    verts, faces = person_meshes(rows, BodyModel.load(body_spec))
    first = rows.slice(0, 1).to_pylist()
    focal, pp = (first[0]["focal"], (first[0]["cx"], first[0]["cy"])) if first else (1.0, (0.0, 0.0))
    write_meshes(Path(frame_dir), verts, faces, focal, pp)
    return str(Path(frame_dir) / MESHES_FILE)


def _frame_record(
    stage: str, chain_hash: str, outputs: list[str], t0: float, people: int, source: dict[str, Any]
) -> dict[str, Any]:
    """The manifest record of a per-frame unit that wrote `outputs` about `people` people."""
    rec = UnitRecord(
        stage=stage, unit="frame", config_hash=chain_hash, outputs=outputs,
        seconds=time.perf_counter() - t0, info={"people": people}, **source,
    )  # fmt: skip
    return asdict(rec)


def write_overlay(frame_dir: Path, boxes: np.ndarray, keypoints: np.ndarray | None) -> None:
    """`overlay.png`: boxes and skeletons on the finest pyramid level at most 4096 px on a side."""
    import pyvips

    from tasks.draw import overlay, thumbnail_level

    levels = open_levels(frame_dir / STORE_NAME)
    k = thumbnail_level([lv.shape for lv in levels])
    picture = overlay(np.asarray(levels[k][:]), 0.5**k, boxes, keypoints)
    with atomic_output(frame_dir / OVERLAY_FILE) as tmp:
        pyvips.Image.new_from_array(picture, interpretation="srgb").pngsave(str(tmp), compression=3)


def regress_batch_unit(
    store: str, boxes: np.ndarray, keypoints: np.ndarray, cfg: RegressConfig, camera: dict[str, float]
) -> dict[str, np.ndarray]:
    """SMPL for boxes (N, 4) with keypoints (N, 17, 3) of one frame (tasks/regress.py Regression
    fields, plus the regressor's name and sha256); camera: focal, cx, cy (px)."""
    from tasks.models.embedded import load_regressor
    from tasks.regress import regress

    levels = [ChunkCache(lv) for lv in open_levels(Path(store))]
    height, width = levels[0].shape[:2]
    model = load_regressor(cfg.backend, cfg.model, _device(cfg.device))
    r = regress(
        levels, boxes, keypoints, model, (width, height), camera["focal"], (camera["cx"], camera["cy"])
    )
    # The network's identity travels with its results: the write unit need not load it again.
    return asdict(r) | {"regressor": f"{cfg.backend}:{model.name}", "regressor_sha256": model.sha256}


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# focal_source values of a focal that is known, not guessed (frame_camera; the crowd step's plane).
FOCAL_GIVEN, FOCAL_ESTIMATED = "given", "estimated"
KNOWN_FOCAL = (FOCAL_GIVEN, FOCAL_ESTIMATED)


def frame_camera(store: str, camera: CameraConfig, keypoints: np.ndarray) -> dict[str, Any]:
    """The scene's camera for a frame: focal, cx, cy (px) and how the focal was chosen (focal_source:
    given, diagonal, estimated, or diagonal because the people do not determine it; estimate: what
    tasks/camera.py found). `auto` focal = the image diagonal; `estimate` = from the people's
    keypoints (N, 17, 3) px; `auto` centre = the image centre."""
    from dataclasses import asdict

    from tasks.camera import estimate_camera
    from tasks.regress import default_focal

    height, width = open_levels(Path(store))[0].shape[:2]
    pp = (
        width / 2 if camera.cx == "auto" else float(camera.cx),
        height / 2 if camera.cy == "auto" else float(camera.cy),
    )
    out: dict[str, Any] = {"cx": pp[0], "cy": pp[1], "estimate": None}
    if camera.focal == "estimate":
        est = estimate_camera(keypoints, (width, height), pp)
        out["estimate"] = None if est is None else asdict(est)
        if est is not None:
            return out | {"focal": est.focal, "focal_source": FOCAL_ESTIMATED}
        return out | {
            "focal": default_focal(width, height),
            "focal_source": "diagonal (not determined by the people)",
        }
    if camera.focal == "auto":
        return out | {"focal": default_focal(width, height), "focal_source": "diagonal"}
    return out | {"focal": float(camera.focal), "focal_source": FOCAL_GIVEN}


def regress_write_unit(
    frame_dir: str, frame: str, det_ids: np.ndarray, cfg: RegressConfig, camera: dict[str, Any],
    chain_hash: str, source: dict[str, Any], *batches: dict[str, np.ndarray],
) -> dict[str, Any]:  # fmt: skip
    """Write `smpl.parquet` for a frame from its regression batches; `camera` (frame_camera) goes
    into its metadata."""
    from schemas.tables import (
        DETECTIONS,
        KEYPOINTS,
        detections_array,
        keypoints_array,
        read_table,
        smpl_table,
        write_parquet,
    )
    from tasks.crowd import keypoint_people, quality
    from tasks.models.body import BodyModel

    t0 = time.perf_counter()
    identity = ("pp", "regressor", "regressor_sha256")
    r = {k: np.concatenate([b[k] for b in batches]) for k in batches[0] if k not in identity}
    r["pp"] = batches[0]["pp"]
    body = BodyModel.load(cfg.body)
    _, joints, coco = body.numpy_forward(r["pose"], r["betas"], r["transl"])
    fdir = Path(frame_dir)
    boxes = detections_array(read_table(fdir / DETECTIONS_FILE, DETECTIONS))[:, :4]
    kp = keypoints_array(read_table(fdir / KEYPOINTS_FILE, KEYPOINTS))
    pp = (float(r["pp"][0]), float(r["pp"][1]))
    q = quality(joints, coco, keypoint_people(boxes, kp, float(r["focal"][0]), pp))
    r |= {
        "joints": joints,
        "finetuned": False,
        "keypoint_error": q.keypoint_error,
        "ground_distance": q.ground_distance,
    }
    meta = {
        "regressor": batches[0]["regressor"],
        "regressor_sha256": batches[0]["regressor_sha256"],
        "body_model": body.name,
        "body_model_sha256": body.sha256,
        "ground_plane": json.dumps(q.plane.tolist()),
        "camera": json.dumps(camera),
    }
    write_parquet(smpl_table(frame, det_ids, r, meta), fdir / SMPL_FILE)
    return _frame_record("regress", chain_hash, [SMPL_FILE], t0, len(det_ids), source)


def _median(a: np.ndarray) -> float | None:
    return float(np.median(a)) if len(a) else None


def write_meshes(
    frame_dir: Path, verts: np.ndarray, faces: np.ndarray, focal: float, pp: tuple[float, float]
) -> None:
    """`meshes.png`: the people's meshes over the finest pyramid level at most 4096 px on a side."""
    import pyvips

    from tasks.draw import meshes, thumbnail_level

    levels = open_levels(frame_dir / STORE_NAME)
    k = thumbnail_level([lv.shape for lv in levels])
    picture = meshes(np.asarray(levels[k][:]), 0.5**k, verts, faces, focal, pp)
    with atomic_output(frame_dir / MESHES_FILE) as tmp:
        pyvips.Image.new_from_array(picture, interpretation="srgb").pngsave(str(tmp), compression=3)


def crowd_unit(
    frame_dir: str, frame: str, cfg: CrowdConfig, regress: RegressConfig, seed: int, chain_hash: str,
    source: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Finetune the regressor on one frame's people: `crowd.parquet` (the smpl contract, after
    finetuning) and `crowd.json` (ground plane, camera, loss curve, network evaluations)."""
    import copy

    import roma
    import torch

    from schemas.io import atomic_write_text
    from schemas.tables import (
        DETECTIONS,
        KEYPOINTS,
        SMPL,
        detections_array,
        fixed_array,
        keypoints_array,
        read_table,
        smpl_table,
        write_parquet,
    )  # fmt: skip
    from tasks.crowd import crowd_inputs, finetune, ground_normal, quality
    from tasks.models.body import BodyModel
    from tasks.models.embedded import load_regressor
    from tasks.regress import crop_params

    t0 = time.perf_counter()
    fdir = Path(frame_dir)
    det = read_table(fdir / DETECTIONS_FILE, DETECTIONS)
    boxes = detections_array(det)[:, :4]
    kp = keypoints_array(read_table(fdir / KEYPOINTS_FILE, KEYPOINTS))
    smpl = read_table(fdir / SMPL_FILE, SMPL)
    focal = float(smpl.column("focal")[0].as_py())
    camera = json.loads((smpl.schema.metadata or {}).get(b"camera", b"{}"))  # how the focal was chosen
    pp = (float(smpl.column("cx")[0].as_py()), float(smpl.column("cy")[0].as_py()))
    height, width = open_levels(fdir / STORE_NAME)[0].shape[:2]
    regressor = load_regressor(regress.backend, regress.model, "cpu")
    levels = [ChunkCache(lv) for lv in open_levels(fdir / STORE_NAME)] if regressor.uses_image else None
    people, model = crowd_inputs(regressor, levels, boxes, kp, focal, pp)  # crops, if any, kept uint8
    body = BodyModel.load(regress.body)
    device = _device(cfg.device)
    if device != "cpu":  # the cached body model stays on the CPU for the other units of this worker
        body = copy.deepcopy(body).to(device)
    # A plane from the image is only as right as the focal: see GlobalConfig.normal.
    focal_known = camera.get("focal_source") in KNOWN_FOCAL
    normal, normal_source = (
        ground_normal(cfg.global_, people, (width, height), focal_known)
        if cfg.method == "global"
        else (None, None)
    )
    fit = finetune(model, people.to(device), body, cfg, seed=seed, normal=normal)
    n = len(boxes)
    if not all(bool(torch.isfinite(t).all()) for t in (fit.rotmat, fit.betas, fit.transl)):
        raise ValueError(f"finetuning ({cfg.method}) diverged: non-finite people; smpl.parquet is kept")
    pose = roma.rotmat_to_rotvec(fit.rotmat.cpu()).reshape(n, 72).numpy()
    centre, b = crop_params(boxes)
    scale = np.ones(n, np.float32) if fit.scale is None else fit.scale.cpu().numpy()
    r = {
        "pose": pose, "betas": fit.betas.cpu().numpy(), "transl": fit.transl.cpu().numpy(), "scale": scale,
        "cam": fit.cam.cpu().numpy(), "joints": fit.joints.cpu().numpy(), "focal": np.full(n, focal),
        "pp": np.asarray(pp), "b": b, "centre": centre, "finetuned": True,
    }  # fmt: skip
    _, _, coco = body.numpy_forward(pose, r["betas"], r["transl"], scale=scale)
    q = quality(r["joints"], coco, people)  # the tables this unit read, not read again
    r |= {"keypoint_error": q.keypoint_error, "ground_distance": q.ground_distance}
    plane = [float(v) for v in fit.plane] if fit.plane is not None else None
    meta = {
        "regressor": f"{regress.backend}:{regressor.name}", "regressor_sha256": regressor.sha256,
        "body_model": body.name, "body_model_sha256": body.sha256, "crowd_method": cfg.method,
        "ground_plane": json.dumps(plane), "camera": json.dumps(camera),
    }  # fmt: skip
    write_parquet(smpl_table(frame, det.column("det_id").to_numpy(), r, meta), fdir / CROWD_FILE)
    before = fixed_array(smpl, "joints3d", 24, 3)
    inverse = 1.0 / scale[:, None, None]
    unsnapped = quality(r["joints"] * inverse, coco * inverse, people) if fit.scale is not None else q

    def spread(d: np.ndarray) -> float | None:  # robust sigma of the feet about the plane, m
        d = d[np.isfinite(d)]
        return float(1.4826 * np.median(np.abs(d - np.median(d)))) if len(d) >= 3 else None

    report = {
        "method": cfg.method, "people": n, "ground_plane": plane, "ground_normal": normal_source,
        "ground_offset": cfg.global_.height if cfg.method == "global" else None,  # first: held
        "camera": camera | {"focal": focal, "cx": pp[0], "cy": pp[1], "width": width, "height": height},
        "evaluations": fit.evaluations, "iterations": len(fit.curve), "loss_curve": fit.curve,
        "seed": seed, "device": device, "seconds": round(time.perf_counter() - t0, 2),
        "mean_joint_change_m": float(np.linalg.norm(r["joints"] - before, axis=-1).mean()) if n else 0.0,
        # after snap the feet are on the plane by construction: "finetuned" is before that last step
        "feet_spread_m": {"before": spread(smpl.column("ground_distance").to_numpy()),
                          "finetuned": spread(unsnapped.ground_distance), "after": spread(q.ground_distance)},
        "scale_percentiles_5_50_95": np.percentile(scale, [5, 50, 95]).round(4).tolist() if n else None,
        "keypoint_error_median": {"before": _median(smpl.column("keypoint_error").to_numpy()),
                                  "after": _median(q.keypoint_error)},
    }  # fmt: skip
    atomic_write_text(fdir / CROWD_REPORT, json.dumps(report) + "\n")
    return _frame_record("crowd", chain_hash, [CROWD_FILE, CROWD_REPORT], t0, n, source)


PERSONS_DIR = "persons"
BIRDSEYE_FILE = "birdseye.png"
SIDEVIEW_FILE = "sideview.png"


def write_unit(
    frame_dir: str, scene: str, frame: str, use_crowd: bool, chain_hash: str, source: dict[str, Any]
) -> dict[str, Any]:
    """The frame's rows of the persons dataset `<scene dir>/persons/` (after the crowd step when it
    ran, else straight from the regressor)."""
    from importlib import metadata

    from schemas.persons import file_metadata
    from schemas.tables import DETECTIONS, KEYPOINTS, SMPL, read_table
    from tasks.export import persons_table, write_frame

    t0 = time.perf_counter()
    fdir = Path(frame_dir)
    smpl = read_table(fdir / (CROWD_FILE if use_crowd else SMPL_FILE), SMPL)
    table = persons_table(
        read_table(fdir / DETECTIONS_FILE, DETECTIONS), read_table(fdir / KEYPOINTS_FILE, KEYPOINTS), smpl
    )
    meta = smpl.schema.metadata or {}
    text = {k.decode(): v.decode() for k, v in meta.items()}
    info = file_metadata(
        body_model=text.get("body_model", ""), body_sha256=text.get("body_model_sha256", ""),
        pipeline_version=metadata.version("gigacrowd-pipeline"), config_hash=chain_hash,
        regressor=text.get("regressor", ""), crowd_method=text.get("crowd_method"),
        ground_plane=json.loads(text.get("ground_plane", "null")), frame=frame, scene=scene,
    )  # fmt: skip
    path = write_frame(fdir.parent / PERSONS_DIR, scene, frame, table, info)
    outputs = [str(Path("..") / path.relative_to(fdir.parent))]
    plane = json.loads(text.get("ground_plane", "null"))
    if plane is not None and np.isfinite(plane).all() and len(table) >= 3:
        outputs += _ground_pictures(fdir, table, np.asarray(plane))
    return _frame_record("write", chain_hash, outputs, t0, len(table), source)


def _ground_pictures(fdir: Path, table: Any, plane: np.ndarray) -> list[str]:
    """`birdseye.png` and `sideview.png`: everyone on the frame's fitted ground plane."""
    import pyvips

    from schemas.tables import fixed_array
    from tasks.draw import birdseye, side_view

    joints = fixed_array(table, "joints3d", 24, 3).astype(np.float64)
    height, width = open_levels(fdir / STORE_NAME)[0].shape[:2]
    focal = float(table.column("focal")[0].as_py())
    pictures = {
        BIRDSEYE_FILE: birdseye(joints, plane, focal, (width, height)),
        SIDEVIEW_FILE: side_view(joints, plane),
    }
    for name, picture in pictures.items():
        with atomic_output(fdir / name) as tmp:
            pyvips.Image.new_from_array(picture, interpretation="srgb").pngsave(str(tmp), compression=3)
    return list(pictures)
