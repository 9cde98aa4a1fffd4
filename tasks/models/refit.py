"""Betas carried from one SMPL-format body to another: the same person in another shape space.

Two bodies in SMPL's file format share the kinematic tree, the rest pose and the rest axes, so the pose
parameters mean the same rotations in both; only the betas mean other things. In the rest pose the 24
joints and the COCO face keypoints of either body are affine in its betas (BodyModel.rest_basis), so
the betas of the target body that best reproduce a person's rest skeleton are one linear least-squares
solve, and a translation that is free in the fit (each file puts its origin elsewhere) goes into the
placement instead: SMPL's global orient turns the body about its rest pelvis, so the posed pelvis is
scale * rest pelvis + trans, and shifting trans by scale * (source pelvis - target pelvis) keeps it put.
Every other posed joint follows its bones (differences of rest joints), so it moves by at most the
bone errors summed along its chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BETAS = 10


@dataclass(frozen=True)
class Refit:
    """N people refitted into the target body. betas (N, 10) in the target's shape space; shift (N, 3)
    m, body axes, unscaled: source rest pelvis minus target rest pelvis (add scale * shift to trans);
    residual_mm (N,): root-mean-square distance over the 29 fitted points (24 joints, 5 face
    keypoints) after the fit, millimetres; worst_mm (N,): the largest of those distances, mm."""

    betas: np.ndarray
    shift: np.ndarray
    residual_mm: np.ndarray
    worst_mm: np.ndarray


def refit_betas(
    src: tuple[np.ndarray, np.ndarray], dst: tuple[np.ndarray, np.ndarray], betas: np.ndarray
) -> Refit:
    """Betas of the target body whose rest joints and face keypoints match the source body's.

    src, dst: (mean (K, 3), dirs (K, 3, 10)) rest-point bases of the two bodies, metres, same K points
    in the same order (BodyModel.rest_basis: K = 29, point 0 the pelvis); betas (N, 10) source betas.
    1. the source rest points P_n = mean_s + dirs_s @ beta_n (N, K, 3);
    2. unknowns (beta'_n (10), c_n (3)) minimising sum_k |mean_d,k + dirs_d,k @ beta'_n + c_n - P_n,k|^2,
       one pseudo-inverse for everybody (the design matrix does not depend on the person);
    3. residuals of that fit per point; pelvis shift P_n,0 - (mean_d,0 + dirs_d,0 @ beta'_n).
    """
    (mean_s, dirs_s), (mean_d, dirs_d) = src, dst
    if mean_s.shape != mean_d.shape or dirs_s.shape != dirs_d.shape or dirs_s.shape[-1] != N_BETAS:
        raise ValueError(f"rest bases differ in shape: {dirs_s.shape} and {dirs_d.shape}")
    betas = np.asarray(betas, np.float64).reshape(-1, N_BETAS)
    k = len(mean_s)
    # 1.
    points = mean_s[None] + np.einsum("kcb,nb->nkc", dirs_s, betas)
    # 2.
    design = np.concatenate([dirs_d.reshape(3 * k, N_BETAS), np.tile(np.eye(3), (k, 1))], axis=1)
    target = (points - mean_d[None]).reshape(len(betas), 3 * k)
    x = target @ np.linalg.pinv(design).T  # (N, 13)
    # 3.
    err = np.sqrt((((x @ design.T) - target).reshape(-1, k, 3) ** 2).sum(-1)) * 1000.0  # (N, K) mm
    new = x[:, :N_BETAS]
    pelvis = mean_d[0][None] + new @ dirs_d[0].T
    return Refit(
        betas=new,
        shift=points[:, 0] - pelvis,
        residual_mm=np.sqrt((err**2).mean(1)),
        worst_mm=err.max(1, initial=0.0),
    )
