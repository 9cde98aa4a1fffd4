"""The crowd step's loss terms, ground planes and per-person quality measures (reference/method.md
section 4). Pure tensor functions; every method of tasks/crowd uses them.

Conventions: camera frame x right, y down, z forward, metres; keypoints in full-resolution pixels,
compared in box units (x - c) / b; SMPL joints 0 pelvis, 7/8 ankles, 15 head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from tasks.regress import project, to_crop_units
from tasks.robust import MAD_TO_SIGMA

if TYPE_CHECKING:
    from tasks.crowd.people import People

PELVIS, L_ANKLE, R_ANKLE, HEAD = 0, 7, 8, 15


def feet(joints: torch.Tensor) -> torch.Tensor:
    """joints (N, 24, 3) -> (N, 3) where each person stands: the midpoint of the two ankles."""
    return (joints[:, L_ANKLE] + joints[:, R_ANKLE]) / 2


def ground_direction(joints: torch.Tensor) -> torch.Tensor:
    """joints (N, 24, 3) camera frame m (translation included) -> (3,) unit "up" of the crowd:
    the mean of each person's unit vector from the ankles' midpoint to the head (CrowdRec eq. 7)."""
    up = joints[:, HEAD] - feet(joints)
    mean = (up / up.norm(dim=-1, keepdim=True).clamp(min=1e-9)).mean(0)
    return mean / mean.norm().clamp(min=1e-9)


def crowd_loss(joints: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Standard deviation (unbiased, m) of the pelvis heights along `up` (3,) (CrowdRec eq. 8):
    zero when every pelvis lies on one plane orthogonal to `up`."""
    return (joints[:, PELVIS] @ up).std()


def keypoint_errors(
    coco: torch.Tensor,
    kp: torch.Tensor,
    centre: torch.Tensor,
    b: torch.Tensor,
    focal: torch.Tensor,
    pp: torch.Tensor,
) -> torch.Tensor:
    """(N,) each person's confidence-weighted squared reprojection error in box units, averaged over
    17 joints and both coordinates. coco (N, 17, 3) camera frame m; kp (N, 17, 3) x, y px and
    confidence; centre (N, 2), b (N,) crop px; focal (N,) px; pp (N, 2) principal point px."""
    pred = to_crop_units(project(coco, focal, pp), centre, b)
    target = to_crop_units(kp[..., :2], centre, b)
    return (kp[..., 2:] * (pred - target) ** 2).mean(dim=(1, 2))


def pose_init_loss(rotmat: torch.Tensor, rotmat0: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the rotation matrices (N, 24, 3, 3) from the first prediction."""
    return ((rotmat - rotmat0) ** 2).mean()


def shape_loss(betas: torch.Tensor) -> torch.Tensor:
    """Mean squared betas (N, 10): shapes stay near the mean."""
    return (betas**2).mean()


def plane_of(joints: torch.Tensor, up: torch.Tensor) -> np.ndarray:
    """(4,) plane n . X + d = 0 with n = up through the median height of the feet (ankle midpoints)."""
    d = -float((feet(joints) @ up).median())
    return np.array([*up.tolist(), d])


def robust_ground(joints: torch.Tensor, max_angle_deg: float) -> torch.Tensor:
    """(3,) the crowd's up from people whose own head-over-feet direction lies within `max_angle_deg`
    of the crowd's mean one (seated, lying, and false detections do not tilt it)."""
    up = ground_direction(joints)
    own = joints[:, HEAD] - feet(joints)
    own = own / own.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    keep = own @ up >= math.cos(math.radians(max_angle_deg))
    return ground_direction(joints[keep]) if int(keep.sum()) >= 3 else up


def fit_plane(points: torch.Tensor, up: torch.Tensor, rounds: int = 3, k: float = 2.5) -> np.ndarray:
    """(4,) robust plane n . X + d = 0 through points (N, 3) m: least squares (the centred points'
    smallest singular direction), refitted `rounds` times without the points farther than k robust
    sigmas (MAD); n is oriented along `up` (3,). The plane comes from where the people stand, not
    from how upright the network thinks they are (regressed orientations lean towards the mean)."""
    pts = points.detach().double()
    keep = torch.ones(len(pts), dtype=torch.bool)
    n, d = up.double(), -float((pts @ up.double()).median())
    for _ in range(rounds):
        if int(keep.sum()) < 3:
            break
        sel = pts[keep]
        centre = sel.mean(0)
        n = torch.linalg.svd(sel - centre, full_matrices=False).Vh[-1]
        n = n if float(n @ up.double()) >= 0 else -n
        d = -float(centre @ n)
        r = pts @ n + d
        sigma = MAD_TO_SIGMA * float((r - r[keep].median()).abs()[keep].median()) + 1e-6
        keep = (r - r[keep].median()).abs() <= k * sigma
    return np.array([*n.tolist(), d])


def snap_to_plane(
    joints: torch.Tensor, plane: torch.Tensor, limits: tuple[float, float] = (0.5, 2.0)
) -> torch.Tensor:
    """(N,) the scale about the camera centre that puts each person's feet (ankle midpoint of joints
    (N, 24, 3), camera frame m) on `plane` (4,) n . X + d = 0: lambda = -d / (n . feet), clipped to
    `limits`; 1 where the feet's ray runs parallel to the plane. Scaling a person about the camera
    centre leaves its image unchanged, so the keypoints fit as before, and moves it along its rays
    to the depth where it stands on the crowd's ground."""
    along = feet(joints) @ plane[:3]
    lam = -plane[3] / torch.where(along.abs() > 1e-9, along, torch.ones_like(along))
    lam = torch.where(along.abs() > 1e-9, lam, torch.ones_like(lam))
    return lam.clamp(*limits)


@dataclass(frozen=True)
class Quality:
    """Per person: keypoint_error (N,) as keypoint_errors; ground_distance (N,) m, the feet's signed
    distance from `plane` (4,), the robust plane fitted to everyone's feet (n up)."""

    keypoint_error: np.ndarray
    ground_distance: np.ndarray
    plane: np.ndarray


def quality(joints: np.ndarray, coco: np.ndarray, people: People, max_angle_deg: float = 30.0) -> Quality:
    """How well each person fits its keypoints and the crowd's ground. joints (N, 24, 3) and coco
    (N, 17, 3) camera frame m (translation included)."""
    j = torch.as_tensor(joints, dtype=torch.float32)
    c = torch.as_tensor(coco, dtype=torch.float32)
    p = people
    err = keypoint_errors(c, p.kp, p.centre, p.b, p.focal, p.pp).numpy()
    if len(j) < 3:
        return Quality(err, np.full(len(j), np.nan), np.full(4, np.nan))
    f = feet(j)
    plane = fit_plane(f, robust_ground(j, max_angle_deg))
    return Quality(err, f.double().numpy() @ plane[:3] + plane[3], plane)
