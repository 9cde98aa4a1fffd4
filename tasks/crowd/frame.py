"""The crowd step on one frame: its people, the configured method, the finetuned rows and the report."""

from __future__ import annotations

import json
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


@dataclass(frozen=True)
class CrowdResult:
    """A frame after the crowd step: its smpl table (crowd.parquet) and its report (crowd.json: the
    ground plane, camera, loss curve, network evaluations, how far people moved, feet spread)."""

    smpl: FrameSmpl
    report: dict[str, Any]


def crowd_frame(
    levels: list[Any], boxes: np.ndarray, keypoints: np.ndarray, before: FrameSmpl, cfg: CrowdConfig,
    regress: RegressConfig, seed: int,
) -> CrowdResult:  # fmt: skip
    """Finetune the frame's regressor on its people with cfg.method. levels: the frame's pyramid (its
    size; its pixels only for a regressor that uses the image); boxes (N, 4) px, keypoints (N, 17, 3)
    px + confidence; before: the regress stage's table of the same people, with its camera."""
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
    fit = finetune(model, people.to(device), on_device, method, seed=seed)
    if not all(bool(torch.isfinite(t).all()) for t in (fit.rotmat, fit.betas, fit.transl)):
        raise ValueError(f"finetuning ({cfg.method}) diverged: non-finite people; {SMPL_FILE} is kept")
    smpl, coco, q = _rows(fit, before, boxes, people, body, focal, pp)
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
    return CrowdResult(FrameSmpl(smpl, meta), report | _changes(before, smpl, fit, coco, q, people))


def _copy_to(body: BodyModel, device: str) -> BodyModel:
    """A copy on `device`: the cached body model stays on the CPU for the other units of this worker."""
    import copy

    return copy.deepcopy(body).to(device)


def _plane(fit: Fit) -> list[float] | None:
    return [float(v) for v in fit.plane] if fit.plane is not None else None


def _rows(
    fit: Fit, before: FrameSmpl, boxes: np.ndarray, people: People, body: BodyModel, focal: float,
    pp: tuple[float, float],
) -> tuple[SmplRows, np.ndarray, Quality]:  # fmt: skip
    """The finetuned people as smpl rows; their COCO joints (N, 17, 3) m and quality."""
    n = len(boxes)
    pose = roma.rotmat_to_rotvec(fit.rotmat.cpu()).reshape(n, 72).numpy()
    centre, b = crop_params(boxes)
    scale = np.ones(n, np.float32) if fit.scale is None else fit.scale.cpu().numpy()
    betas, transl, joints = fit.betas.cpu().numpy(), fit.transl.cpu().numpy(), fit.joints.cpu().numpy()
    _, _, coco = body.numpy_forward(pose, betas, transl, scale=scale)
    q = _quality(joints, coco, people)
    rows = smpl_rows(
        before.rows.det_id, pose, betas, transl, scale, fit.cam.cpu().numpy(), joints, np.full(n, focal),
        np.asarray(pp), centre, b, True, q,
    )  # fmt: skip
    return rows, coco, q


def _quality(joints: np.ndarray, coco: np.ndarray, people: People) -> Quality:
    """tasks/quality.quality of the people this step read (joints (N, 24, 3), coco (N, 17, 3) m)."""
    return quality(joints, coco, people.kp, people.centre, people.b, people.focal, people.pp)


def _median(a: np.ndarray) -> float | None:
    return float(np.median(a)) if len(a) else None


def _changes(
    before: FrameSmpl, after: SmplRows, fit: Fit, coco: np.ndarray, q: Quality, people: People
) -> dict[str, Any]:
    """The report's before/after fields: mean joint change (m), the feet's robust spread about the
    plane (m: before, finetuned, after the snap), the snap's scale percentiles, median keypoint error."""
    n = len(after)
    scale = after.scale
    joints = after.joints3d
    inverse = 1.0 / scale[:, None, None]
    # after the snap the feet are on the plane by construction: "finetuned" is before that last step
    unsnapped = _quality(joints * inverse, coco * inverse, people) if fit.scale is not None else q
    return {
        "mean_joint_change_m": float(np.linalg.norm(joints - before.rows.joints3d, axis=-1).mean())
        if n
        else 0.0,
        "feet_spread_m": {
            "before": robust_sigma(before.rows.ground_distance),
            "finetuned": robust_sigma(unsnapped.ground_distance),
            "after": robust_sigma(q.ground_distance),
        },
        "scale_percentiles_5_50_95": np.percentile(scale, [5, 50, 95]).round(4).tolist() if n else None,
        "keypoint_error_median": {
            "before": _median(before.rows.keypoint_error),
            "after": _median(q.keypoint_error),
        },
    }
