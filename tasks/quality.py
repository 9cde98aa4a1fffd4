"""How well each person fits its 2D keypoints and the crowd's ground: the measures the regress and the
crowd stage both write (keypoint_error, ground_distance), and the ground planes they rest on.

Conventions: camera frame x right, y down, z forward, metres; keypoints in full-resolution pixels,
compared in box units (x - c) / b; SMPL joints 0 pelvis, 7/8 ankles, 15 head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tasks.regress import project, to_crop_units
from tasks.robust import MAD_TO_SIGMA

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


@dataclass(frozen=True)
class Quality:
    """Per person: keypoint_error (N,) as keypoint_errors; ground_distance (N,) m, the feet's signed
    distance from `plane` (4,), the robust plane fitted to everyone's feet (n up)."""

    keypoint_error: np.ndarray
    ground_distance: np.ndarray
    plane: np.ndarray


def quality(
    joints: np.ndarray, coco: np.ndarray, kp: torch.Tensor, centre: torch.Tensor, b: torch.Tensor,
    focal: torch.Tensor, pp: torch.Tensor, max_angle_deg: float = 30.0, plane: np.ndarray | None = None,
) -> Quality:  # fmt: skip
    """How well each person fits its keypoints and the crowd's ground. joints (N, 24, 3) and coco
    (N, 17, 3) camera frame m (translation included); kp (N, 17, 3) px + confidence; centre (N, 2),
    b (N,) crop px; focal (N,) px; pp (N, 2) principal point px; plane (4,) the ground n . X + d = 0
    to measure against (None: the robust plane of everyone's feet)."""
    j = torch.as_tensor(joints, dtype=torch.float32)
    c = torch.as_tensor(coco, dtype=torch.float32)
    err = keypoint_errors(c, kp, centre, b, focal, pp).numpy()
    if plane is not None:
        plane = np.asarray(plane, np.float64)
        return Quality(err, feet(j).double().numpy() @ plane[:3] + plane[3], plane)
    if len(j) < 3:
        return Quality(err, np.full(len(j), np.nan), np.full(4, np.nan))
    f = feet(j)
    plane = fit_plane(f, robust_ground(j, max_angle_deg))
    return Quality(err, f.double().numpy() @ plane[:3] + plane[3], plane)
