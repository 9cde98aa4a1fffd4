"""The crowd step's loss terms and ground-plane helpers (reference/method.md section 4), shared by
every method of tasks/crowd; the per-person quality measures and robust planes are in tasks/quality.py.

Conventions: camera frame x right, y down, z forward, metres; keypoints in full-resolution pixels,
compared in box units (x - c) / b; SMPL joints 0 pelvis, 7/8 ankles, 15 head.
"""

from __future__ import annotations

import numpy as np
import torch

from tasks.quality import PELVIS, feet


def crowd_loss(joints: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Standard deviation (unbiased, m) of the pelvis heights along `up` (3,) (CrowdRec eq. 8):
    zero when every pelvis lies on one plane orthogonal to `up`."""
    return (joints[:, PELVIS] @ up).std()


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
