"""The crowd step on one frame: its people, the configured method, the finetuned rows and the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import roma
import torch

from schemas.layout import SMPL_FILE
from schemas.scene import CrowdConfig, RegressConfig
from schemas.tables import FrameSmpl, SmplRows
from tasks.camera import FrameCamera
from tasks.crowd.method import finetune
from tasks.crowd.people import Fit, People, crowd_inputs
from tasks.crowd.registry import crowd_method
from tasks.models.body import BodyModel
from tasks.models.registry import load_regressor, resolve_device
from tasks.quality import Quality, quality
from tasks.regress import crop_params, smpl_rows
from tasks.robust import robust_sigma
from tasks.support import FLOOR, depth_bound, person_measures, plausibility, pull_within_bound


@dataclass(frozen=True)
class CrowdResult:
    """A frame after the crowd step: its smpl table (crowd.parquet) and its report (crowd.json: the
    ground plane, camera, loss curve, network evaluations, how far people moved, feet spread)."""

    smpl: FrameSmpl
    report: dict[str, Any]


def crowd_frame(
    levels: list[Any], boxes: np.ndarray, keypoints: np.ndarray, before: FrameSmpl, cfg: CrowdConfig,
    regress: RegressConfig, seed: int, progress: Callable[[int, int], None] | None = None,
) -> CrowdResult:  # fmt: skip
    """Finetune the frame's regressor on its people with cfg.method. levels: the frame's pyramid (its
    size; its pixels only for a regressor that uses the image); boxes (N, 4) px, keypoints (N, 17, 3)
    px + confidence; before: the regress stage's table of the same people, with its camera; progress:
    told (people-evaluations done, about how many the method plans) as it goes."""
    height, width = levels[0].shape[:2]
    camera = FrameCamera(**json.loads(before.metadata["camera"]))  # and how its focal was chosen
    focal, pp = camera.focal, camera.pp
    regressor = load_regressor(regress.backend, regress.model, "cpu")
    people, model = crowd_inputs(regressor, levels, boxes, keypoints, focal, pp)  # crops kept uint8
    body = BodyModel.load(regress.body)
    device = resolve_device(cfg.device)
    on_device = body if device == "cpu" else _copy_to(body, device)
    method = crowd_method(cfg)
    fields = method.prepare(people, (width, height), camera.focal_known)
    planned = method.planned(len(boxes))
    told = None if progress is None else (lambda done: progress(done, planned))
    fit = finetune(model, people.to(device), on_device, method, seed=seed, progress=told)
    if not all(bool(torch.isfinite(t).all()) for t in (fit.rotmat, fit.betas, fit.transl)):
        raise ValueError(f"finetuning ({cfg.method}) diverged: non-finite people; {SMPL_FILE} is kept")
    _bound_off_level(fit, boxes, focal, pp)
    smpl, q = _rows(fit, before, boxes, people, body, focal, pp)
    meta = {
        "regressor": f"{regress.backend}:{regressor.name}", "regressor_sha256": regressor.sha256,
        "body_model": body.name, "body_model_sha256": body.sha256, "crowd_method": cfg.method,
        "ground_plane": json.dumps(_plane(fit)), "camera": json.dumps(camera.as_dict()),
    }  # fmt: skip
    report = {
        "method": cfg.method, "people": len(boxes), "ground_plane": _plane(fit), **fields,
        "camera": camera.as_dict() | {"width": width, "height": height},
        "evaluations": fit.evaluations, "iterations": len(fit.curve), "loss_curve": fit.curve,
        "seed": seed, "device": device,
    }  # fmt: skip
    return CrowdResult(FrameSmpl(smpl, meta), report | _changes(before, smpl, fit, q))


def _bound_off_level(fit: Fit, boxes: np.ndarray, focal: float, pp: tuple[float, float]) -> None:
    """People on no level (fit.levels) pulled in to their depth bound (tasks/support.depth_bound), in
    place: nobody the frame's floors can see stands beyond where the bottom of their box meets them."""
    if fit.levels is None or not len(fit.levels.heights):
        return
    joints, transl = pull_within_bound(
        fit.joints.double().cpu().numpy(), fit.transl.double().cpu().numpy(),
        depth_bound(boxes, focal, pp, fit.levels), fit.levels.level < 0,
    )  # fmt: skip
    like = fit.joints
    fit.joints = torch.as_tensor(joints, dtype=like.dtype, device=like.device)
    fit.transl = torch.as_tensor(transl, dtype=like.dtype, device=like.device)


def _copy_to(body: BodyModel, device: str) -> BodyModel:
    """A copy on `device`: the cached body model stays on the CPU for the other units of this worker."""
    import copy

    return copy.deepcopy(body).to(device)


def _plane(fit: Fit) -> list[float] | None:
    return [float(v) for v in fit.plane] if fit.plane is not None else None


def _rows(
    fit: Fit, before: FrameSmpl, boxes: np.ndarray, people: People, body: BodyModel, focal: float,
    pp: tuple[float, float],
) -> tuple[SmplRows, Quality]:  # fmt: skip
    """The finetuned people as smpl rows and their quality: ground_distance
    of the feet before the snap from the method's main floor (NaN when it found none)."""
    n = len(boxes)
    pose = roma.rotmat_to_rotvec(fit.rotmat.cpu()).reshape(n, 72).numpy()
    centre, b = crop_params(boxes)
    scale = np.ones(n, np.float32) if fit.scale is None else fit.scale.cpu().numpy()
    betas, transl, joints = fit.betas.cpu().numpy(), fit.transl.cpu().numpy(), fit.joints.cpu().numpy()
    _, _, coco = body.numpy_forward(pose, betas, transl, scale=scale)
    inverse = 1.0 / scale[:, None, None]
    plane = fit.plane if fit.plane is not None else np.full(4, np.nan)
    q = _quality(joints * inverse, coco * inverse, people, plane)  # the feet before the snap
    rows = smpl_rows(
        before.rows.det_id, pose, betas, transl, scale, fit.cam.cpu().numpy(), joints, np.full(n, focal),
        np.asarray(pp), centre, b, True, q, body.statures(betas) * scale, fit.support,
    )  # fmt: skip
    return rows, q


def _quality(joints: np.ndarray, coco: np.ndarray, people: People, plane: np.ndarray) -> Quality:
    """tasks/quality.quality of the people this step read (joints (N, 24, 3), coco (N, 17, 3) m)
    against `plane` (4,)."""
    return quality(joints, coco, people.kp, people.centre, people.b, people.focal, people.pp, plane=plane)


def _median(a: np.ndarray) -> float | None:
    return float(np.median(a)) if len(a) else None


def _changes(before: FrameSmpl, after: SmplRows, fit: Fit, q: Quality) -> dict[str, Any]:
    """The report's before/after fields: mean joint change (m), the feet's robust spread about the
    ground (m: before the step, about the refitted robust plane of everyone's feet; finetuned, before
    the snap, about the method's main floor, people on it), the snap's scale percentiles, median
    keypoint error, the floors and support (tasks/support.py) and the plausibility measures."""
    n = len(after)
    on = after.support == FLOOR
    levels = fit.levels
    report: dict[str, Any] = {
        "mean_joint_change_m": float(np.linalg.norm(after.joints3d - before.rows.joints3d, axis=-1).mean())
        if n
        else 0.0,
        "feet_spread_m": {
            "before": robust_sigma(before.rows.ground_distance),
            "finetuned": robust_sigma(q.ground_distance[on]) if on.any() else robust_sigma(q.ground_distance),
        },
        "scale_percentiles_5_50_95": np.percentile(after.scale, [5, 50, 95]).round(4).tolist() if n else None,
        "keypoint_error_median": {
            "before": _median(before.rows.keypoint_error),
            "after": _median(q.keypoint_error),
        },
        "plausibility": plausibility(
            person_measures(
                after.joints3d,
                after.stature,
                after.support,
                levels,
                before.rows.joints3d,
                before.rows.stature,
            )
        ),
    }
    if levels is not None:
        report["levels"] = [
            {"plane": [float(v) for v in levels.plane(k)], "camera_height_m": round(float(h), 3),
             "people": int((levels.level == k).sum())}
            for k, h in enumerate(levels.heights)
        ]  # fmt: skip
        report["warning"] = levels.warning
        report["up_from"] = levels.up_source
    return report
