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
