"""The shipped pose bank: calibrated, within joint limits, mirrored correctly."""

from __future__ import annotations

import numpy as np

from tasks.models.body import SMPL_JOINT_NAMES
from tasks.poses import aa_to_matrix, load_bank, matrix_to_aa, mirror

J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}


def test_axis_angle_round_trip() -> None:
    aa = np.random.default_rng(0).normal(0, 1, (100, 3))
    aa *= np.minimum(1.0, 3.0 / np.linalg.norm(aa, axis=1, keepdims=True))  # angles below pi
    np.testing.assert_allclose(matrix_to_aa(aa_to_matrix(aa)), aa, atol=1e-9)
    r = aa_to_matrix(aa)
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)


def test_mirror_swaps_sides_and_reflects_rotations() -> None:
    pose = np.zeros((1, 24, 3))
    pose[0, J["l_knee"]] = [1.0, 0.2, 0.3]
    m = mirror(pose)
    np.testing.assert_allclose(m[0, J["r_knee"]], [1.0, -0.2, -0.3])
    assert not m[0, J["l_knee"]].any()
    np.testing.assert_allclose(mirror(m), pose)
    # Reflection x -> -x: M R M with M = diag(-1, 1, 1).
    flip = np.diag([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(
        aa_to_matrix(m[0, J["r_knee"]]), flip @ aa_to_matrix(pose[0, J["l_knee"]]) @ flip
    )


def test_bank_is_within_limits_and_mostly_crowd_poses() -> None:
    bank = load_bank()
    assert bank.poses.shape[1:] == (24, 3) and len(bank.poses) > 15000
    deg = np.degrees(np.linalg.norm(bank.poses, axis=-1))
    assert deg[:, J["l_ankle"]].max() <= 60.5 and deg[:, J["r_knee"]].max() <= 150.5
    crowd = deg[bank.crowd]
    assert crowd[:, J["l_knee"]].max() <= 70.5 and bank.crowd.mean() > 0.5
    # Calibrated: the mean head rotation over the bank is small.
    assert np.linalg.norm(bank.poses[:, J["head"]].mean(0)) < np.radians(10)
