"""Betas carried into another body's shape space (tasks/models/refit.py), against a second SMPL-format body
made here: the shipped body with its shape directions mixed (and optionally widened) and its template
moved and stretched, written in the same pkl format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tasks.models.body import NEUTRAL_PATH, SMPL_PARENTS, BodyModel
from tasks.models.refit import refit_betas
from tests.tasks.models.test_body import _smpl_like_file


def perturbed_body_file(path: Path, seed: int = 0, template: bool = True, widen: float = 1.0) -> Path:
    """The shipped body with shape directions mixed by I + 0.3 N(0, 1) (a shape space whose betas mean
    other things), their x components times `widen` (other shapes: not a mix of the shipped ones), and,
    with `template`, a template moved by (1, 4, -2) cm (another origin), its legs 6 % longer and 4 %
    wider (other proportions: not reachable by any betas)."""
    with open(NEUTRAL_PATH, "rb") as f:
        d = pickle.load(f)
    rng = np.random.default_rng(seed)
    dirs = np.einsum("vcb,bk->vck", d["shapedirs"], np.eye(10) + 0.3 * rng.normal(size=(10, 10)))
    dirs[:, 0] *= widen
    v = d["v_template"] + np.array([0.01, 0.04, -0.02])
    if template:
        hip = float((d["J_regressor"] @ d["v_template"])[0, 1]) + 0.04
        low = v[:, 1] < hip
        v[low, 1] = hip + 1.06 * (v[low, 1] - hip)
        v[:, 0] *= 1.04
    d["shapedirs"], d["v_template"] = dirs.astype(np.float32), v.astype(np.float32)
    with open(path, "wb") as f:
        pickle.dump(d, f)
    return path


def mixing(seed: int = 0) -> np.ndarray:
    """The (10, 10) matrix perturbed_body_file mixes the shape directions with."""
    return np.eye(10) + 0.3 * np.random.default_rng(seed).normal(size=(10, 10))


@pytest.fixture(scope="module")
def neutral() -> BodyModel:
    return BodyModel.load("builtin:neutral")


def rest_points(body: BodyModel, betas: np.ndarray) -> np.ndarray:
    """(N, 29, 3) m: rest joints and face keypoints of `body` for betas (N, 10)."""
    mean, dirs = body.rest_basis()
    return mean[None] + np.einsum("kcb,nb->nkc", dirs, betas)


def chain_bound(src: BodyModel, dst: BodyModel, betas: np.ndarray, new: np.ndarray) -> np.ndarray:
    """(N, 24) m: per joint, the bone errors |dst bone - src bone| of the rest skeletons summed from the
    pelvis down to the joint, the most a posed joint can move once the pelvis is kept in place."""
    js, jd = rest_points(src, betas)[:, :24], rest_points(dst, new)[:, :24]
    parents = np.array(SMPL_PARENTS[1:])
    bone = np.zeros(js.shape[:2])
    bone[:, 1:] = np.linalg.norm((jd[:, 1:] - jd[:, parents]) - (js[:, 1:] - js[:, parents]), axis=-1)
    bound = bone.copy()
    for j in range(1, 24):  # parents come before their children in SMPL order
        bound[:, j] += bound[:, SMPL_PARENTS[j]]
    return bound


def test_rest_basis_is_the_forward_pass_at_zero_pose(neutral: BodyModel, tmp_path: Path) -> None:
    betas = np.random.default_rng(0).normal(size=(5, 10))
    for body in (neutral, BodyModel.load(_smpl_like_file(tmp_path, ".pkl"))):
        mean, dirs = body.rest_basis()
        assert mean.shape == (29, 3) and dirs.shape == (29, 3, 10)
        points = rest_points(body, betas)
        joints, coco = body.joints_numpy(np.zeros((5, 72)), betas)
        np.testing.assert_allclose(points[:, :24], joints, atol=2e-6)
        np.testing.assert_allclose(points[:, 24:], coco[:, :5], atol=2e-6)  # nose, eyes, ears
    assert neutral.rest_basis()[0][15, 1] > neutral.rest_basis()[0][0, 1] + 0.5  # head above pelvis, y up


def test_a_mixed_shape_space_is_refitted_exactly(neutral: BodyModel, tmp_path: Path) -> None:
    """Shape directions mixed by M and the template moved: every source body is representable, with
    betas M^-1 beta, the move absorbed by the translation; residual 0, pelvis shift = the move."""
    dst = BodyModel.load(perturbed_body_file(tmp_path / "mixed.pkl", template=False))
    betas = np.random.default_rng(1).normal(0, 1.5, (50, 10))
    fit = refit_betas(neutral.rest_basis(), dst.rest_basis(), betas)
    np.testing.assert_allclose(fit.betas, np.linalg.solve(mixing(), betas.T).T, atol=1e-4)
    assert fit.residual_mm.max() < 0.01 and fit.worst_mm.max() < 0.02
    np.testing.assert_allclose(fit.shift, np.tile([-0.01, -0.04, 0.02], (50, 1)), atol=1e-6)


def test_other_proportions_leave_a_reported_residual(neutral: BodyModel, tmp_path: Path) -> None:
    """Longer, wider legs and widened shape directions cannot be matched: the residual is millimetres,
    grows with the betas (the widening scales with them), and bounds how far posed joints can move."""
    dst = BodyModel.load(perturbed_body_file(tmp_path / "other.pkl", widen=1.3))
    betas = np.random.default_rng(2).normal(0, 1, (200, 10))
    betas[0] = 0.0
    fit = refit_betas(neutral.rest_basis(), dst.rest_basis(), betas)
    assert 1.0 < fit.residual_mm[0] < 10.0  # the template's legs alone
    assert fit.residual_mm.max() > 1.5 * fit.residual_mm[0]
    assert (fit.worst_mm >= fit.residual_mm).all() and fit.worst_mm.max() < 40.0
    tripled = refit_betas(neutral.rest_basis(), dst.rest_basis(), 3 * betas)
    assert np.median(tripled.residual_mm) > np.median(fit.residual_mm) + 1.0  # mm
    # Without the fit (the same betas read in the other space) the skeletons are far further apart.
    naive = rest_points(dst, betas) - rest_points(neutral, betas)
    naive -= naive.mean(1, keepdims=True)
    assert np.median(np.linalg.norm(naive, axis=-1).max(1) * 1000) > 3 * np.median(fit.worst_mm)


def test_bases_of_different_sizes_are_refused(neutral: BodyModel) -> None:
    mean, dirs = neutral.rest_basis()
    with pytest.raises(ValueError, match="rest bases differ"):
        refit_betas((mean, dirs), (mean[:24], dirs[:24]), np.zeros((1, 10)))


def test_posed_joints_follow_the_rest_skeleton(neutral: BodyModel, tmp_path: Path) -> None:
    """The same pose on the refitted betas, translation moved by scale * shift: the pelvis lands on the
    source's exactly, every other joint within its chain's bone errors, the face within a few cm."""
    dst = BodyModel.load(perturbed_body_file(tmp_path / "other.pkl", widen=1.3))
    rng = np.random.default_rng(3)
    n = 64
    betas, pose = rng.normal(0, 1, (n, 10)), rng.normal(0, 0.4, (n, 72))
    scale, transl = rng.uniform(0.8, 1.2, n), rng.normal(0, 3, (n, 3)) + np.array([0, 0, 20])
    fit = refit_betas(neutral.rest_basis(), dst.rest_basis(), betas)
    _, j_src, c_src = neutral.numpy_forward(pose, betas, transl, scale=scale)
    _, j_dst, c_dst = dst.numpy_forward(pose, fit.betas, transl + scale[:, None] * fit.shift, scale=scale)
    err = np.linalg.norm(j_dst - j_src, axis=-1)  # (N, 24) m
    assert err[:, 0].max() < 1e-5
    bound = scale[:, None] * chain_bound(neutral, dst, betas, fit.betas)
    assert (err <= bound + 1e-5).all()
    assert err.max() * 1000 > 5.0  # the test can see a bone error at all
    face = np.linalg.norm(c_dst[:, :5] - c_src[:, :5], axis=-1) * 1000
    assert face.max() < 3 * fit.worst_mm.max()
