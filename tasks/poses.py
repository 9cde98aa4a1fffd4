"""Real human poses in SMPL-24 form for synthetic crowds (and later a pose prior).

The shipped bank `tasks/data/poses_smpl24.npz` is derived from the motion-capture set described in
tasks/data/THIRD_PARTY.md by `python -m tasks.poses SRC.npz`, which corrects its known faults:

1. calibration: each source's neck, head and ankles carry a constant rest offset (25-35 degrees);
   the offset is estimated as the mean rotation of that joint over the source's poses (standing and
   walking dominate, so the true mean is near neutral) and removed: R <- R @ mean^T;
2. filtering by joint limits: ankles beyond 60 degrees, knees beyond 150, a neck or head beyond 70, or
   a root tilted more than 35 degrees from upright are dropped;
3. mirroring happens at load time (`mirror`), doubling the bank.
Every pose keeps its clip name, so a held-out split can be made by clip.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import roma
import torch

from tasks.models.body import SMPL_JOINT_NAMES

BANK_PATH = Path(__file__).parent / "data" / "poses_smpl24.npz"
_J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
_CALIBRATED = ("neck", "head", "l_ankle", "r_ankle")
_LIMITS_DEG = {"l_ankle": 60, "r_ankle": 60, "l_knee": 150, "r_knee": 150, "neck": 70, "head": 70}
_MAX_ROOT_TILT_DEG = 35.0
# A pose a standing or walking crowd may hold: knees and hips not deeply flexed (the root is already
# upright); judged on the pose itself because most clip names (CMU's 001_01.bvh ...) say nothing.
_CROWD_MAX_DEG = {"l_knee": 70, "r_knee": 70, "l_hip": 60, "r_hip": 60}
_SWAP = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]


def aa_to_matrix(aa: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle radians -> (..., 3, 3) rotation matrices."""
    return roma.rotvec_to_rotmat(torch.as_tensor(np.asarray(aa), dtype=torch.float64)).numpy()


def matrix_to_aa(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle radians (robust near 0 and pi)."""
    return roma.rotmat_to_rotvec(torch.as_tensor(np.asarray(r), dtype=torch.float64)).numpy()


def _mean_rotation(r: np.ndarray) -> np.ndarray:
    """(N, 3, 3) -> the rotation closest (Frobenius) to their arithmetic mean."""
    u, _, vt = np.linalg.svd(r.mean(0))
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def within_limits(pose_aa: np.ndarray) -> np.ndarray:
    """(N, 24, 3) axis-angle radians -> (N,) bool: every limited joint (ankles, knees, neck, head)
    rotated no more than its limit."""
    angle = np.degrees(np.linalg.norm(np.asarray(pose_aa, np.float64), axis=-1))
    return np.all([angle[:, _J[name]] <= limit for name, limit in _LIMITS_DEG.items()], axis=0)


def clean(pose_aa: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibrate per source and filter by joint limits. pose_aa (N, 24, 3) -> (kept poses, kept mask)."""
    rot = aa_to_matrix(pose_aa.astype(np.float64))
    for src in np.unique(source):
        rows = source == src
        for name in _CALIBRATED:
            offset = _mean_rotation(rot[rows, _J[name]])
            rot[rows, _J[name]] = rot[rows, _J[name]] @ offset.T
    out = matrix_to_aa(rot)
    keep = within_limits(out)
    up = rot[:, 0] @ np.array([0.0, 1.0, 0.0])  # where the root's up axis points
    keep &= np.degrees(np.arccos(np.clip(up[:, 1], -1, 1))) <= _MAX_ROOT_TILT_DEG
    return out[keep].astype(np.float32), keep


def mirror(pose_aa: np.ndarray) -> np.ndarray:
    """Left-right mirror (reflection x -> -x in SMPL's body frame). pose_aa (N, 24, 3) axis-angle."""
    out = pose_aa[:, _SWAP].copy()
    out[..., 1:] *= -1.0
    return out


@dataclass(frozen=True)
class PoseBank:
    """poses (N, 24, 3) axis-angle radians, SMPL order; clip (N,) names; crowd (N,) bool standing-crowd."""

    poses: np.ndarray
    clip: np.ndarray
    crowd: np.ndarray


def load_bank(path: Path = BANK_PATH, with_mirror: bool = True) -> PoseBank:
    z = np.load(path, allow_pickle=False)
    poses, clip = z["pose_aa"].astype(np.float32), z["clip"]
    angle = np.degrees(np.linalg.norm(poses, axis=-1))
    crowd = np.all([angle[:, _J[n]] <= lim for n, lim in _CROWD_MAX_DEG.items()], axis=0)
    if with_mirror:
        poses = np.concatenate([poses, mirror(poses)])
        clip, crowd = np.concatenate([clip, clip]), np.concatenate([crowd, crowd])
    return PoseBank(poses=poses, clip=clip, crowd=crowd)


def main() -> int:
    ap = argparse.ArgumentParser(description="Build tasks/data/poses_smpl24.npz from the source pose set.")
    ap.add_argument("src", type=Path, help="smpl24_poses_cmu_deepmimic.npz")
    ap.add_argument("--out", type=Path, default=BANK_PATH)
    args = ap.parse_args()
    z = np.load(args.src, allow_pickle=False)
    poses, keep = clean(z["pose_aa"], z["source"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, pose_aa=poses.astype(np.float16), clip=z["clip"][keep], source=z["source"][keep]
    )
    print(f"kept {keep.sum()} of {len(keep)} poses -> {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
