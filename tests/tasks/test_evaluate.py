"""GigaCrowd metrics (tasks/evaluate.py) on crowds whose every score can be worked out by hand.

Camera: f = 1000 px, 2000 x 1000 image, principal point at the centre; x right, y down, z forward.
A person is a torso centre plus 17 fixed COCO joint offsets (a standing body 1.7 m tall), so the truth's
keypoints are the exact projections of a perfect prediction.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schemas.predict import FramePrediction
from schemas.truth import Truth
from tasks import InputError
from tasks.evaluate import (
    COCO_SIGMAS,
    TORSO_JOINTS,
    evaluate,
    evaluate_frame,
    greedy_match,
    oks_matrix,
    project_to_plane,
    scene_of,
    similarity_fit,
)

F, W, H = 1000.0, 2000, 1000
K = np.array([[F, 0.0, W / 2], [0.0, F, H / 2], [0.0, 0.0, 1.0]])
SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
          0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089]  # fmt: skip
# COCO-17 joints around the torso centre, metres, camera axes (y down; the person faces the camera).
OFFSETS = np.array(
    [
        [0.00, -0.55, -0.10], [0.03, -0.58, -0.08], [-0.03, -0.58, -0.08], [0.07, -0.56, -0.02],
        [-0.07, -0.56, -0.02], [0.18, -0.35, 0.00], [-0.18, -0.35, 0.00], [0.25, -0.08, 0.00],
        [-0.25, -0.08, 0.00], [0.28, 0.18, -0.05], [-0.28, 0.18, -0.05], [0.10, 0.12, 0.00],
        [-0.10, 0.12, 0.00], [0.11, 0.55, -0.03], [-0.11, 0.55, -0.03], [0.11, 0.95, 0.02],
        [-0.11, 0.95, 0.02],
    ]
)  # fmt: skip
# Ground 5 m from the camera, normal about (0, -0.97, -0.2) as in GigaCrowd (a camera pitched down).
NORMAL = np.array([0.0, -0.97, -0.2]) / np.linalg.norm([0.0, -0.97, -0.2])
PLANE = np.array([*NORMAL, 5.0])


def proj(points: np.ndarray, k: np.ndarray = K) -> np.ndarray:
    """(..., 3) -> (..., 2), written out rather than borrowed from the module under test."""
    return np.stack(
        [
            k[0, 0] * points[..., 0] / points[..., 2] + k[0, 2],
            k[1, 1] * points[..., 1] / points[..., 2] + k[1, 2],
        ],
        axis=-1,
    )


def standing_crowd(n: int, seed: int = 0) -> np.ndarray:
    """Torso centres (n, 3) 1 m above PLANE (along its normal), distinct depths 8-30 m, in the image."""
    rng = np.random.default_rng(seed)
    z = np.sort(rng.choice(np.arange(8.0, 30.0, 0.05), size=n, replace=False))
    rng.shuffle(z)
    x = rng.uniform(-0.8, 0.8, n) * z * (W / 2) / F
    y = -(PLANE[0] * x + PLANE[2] * z + PLANE[3]) / PLANE[1]  # foot on the ground
    return np.stack([x, y, z], axis=1) + NORMAL  # the normal points up, towards the camera


def truth_of(torso: np.ndarray, coco3d: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """GT arrays of people at `torso`: keypoints (G, 17, 2) px, boxes 10 % larger than the keypoints."""
    coco3d = torso[:, None, :] + OFFSETS if coco3d is None else coco3d
    kp = proj(coco3d)
    lo, hi = kp.min(1), kp.max(1)
    pad = 0.05 * (hi - lo)
    return {
        "gt_kp2d": kp,
        "gt_bbox": np.concatenate([lo - pad, hi + pad], 1),
        "gt_torso": torso,
        "gt_plane": PLANE,
    }


def score(pred_torso: np.ndarray, gt: dict[str, np.ndarray], pred_coco: np.ndarray | None = None, **kw: Any):
    pred_coco = pred_torso[:, None, :] + OFFSETS if pred_coco is None else pred_coco
    return evaluate_frame(pred_coco, pred_torso, kw.pop("K", K), **{**gt, **kw})


def expected_score(s: Any) -> float:
    return 0.3 * s.pa_ppds + 0.2 * s.ss + 0.1 * s.pcod + 0.4 * s.oks - 0.5 * s.rp


def test_constants_are_the_reference_ones() -> None:
    np.testing.assert_array_equal(COCO_SIGMAS, SIGMAS)
    assert TORSO_JOINTS == (1, 2, 16, 17)


def test_perfect_prediction_scores_one() -> None:
    torso = standing_crowd(30)
    s = score(torso, truth_of(torso))
    assert (s.n_matched, s.n_pred, s.n_gt, s.r) == (30, 30, 30, 1.0)
    assert s.pa_ppds == pytest.approx(1.0, abs=1e-12)
    assert s.ppds == pytest.approx(1.0, abs=1e-12)
    assert s.ss == pytest.approx(1.0, abs=1e-12)
    assert s.pcod == 1.0
    assert s.oks == 1.0
    assert s.rp == 0.0
    assert s.score == pytest.approx(1.0, abs=1e-12)
    assert sorted(s.matches.tolist()) == [[i, i] for i in range(30)]
    assert s.scale == pytest.approx(1.0)


def test_prediction_order_does_not_matter() -> None:
    torso = standing_crowd(12)
    perm = np.random.default_rng(1).permutation(12)
    s = score(torso[perm], truth_of(torso))
    assert s.score == pytest.approx(1.0)
    assert {(g, p) for g, p in s.matches.tolist()} == {(int(perm[p]), p) for p in range(12)}


def test_oks_by_hand() -> None:
    """Every joint 5 px right of the truth: OKS = mean_k exp(-25 / (2 * area * (2 sigma_k)^2))."""
    torso = np.array([[0.3, 0.6, 12.0]])
    gt = truth_of(torso)
    coco = torso[:, None, :] + OFFSETS
    coco[..., 0] += 5.0 * coco[..., 2] / F  # 5 px in the image at each joint's own depth
    x1, y1, x2, y2 = gt["gt_bbox"][0]
    area = (x2 - x1) * (y2 - y1)
    expected = np.mean([math.exp(-25.0 / (2 * area * (2 * sg) ** 2)) for sg in SIGMAS])
    s = score(torso, gt, pred_coco=coco)
    assert s.match_oks[0] == pytest.approx(expected, rel=1e-12)
    assert s.oks == pytest.approx(expected, rel=1e-12)
    # A box twice as wide doubles the area, so the same error costs less.
    wide = dict(gt, gt_bbox=np.array([[x1, y1, x1 + 2 * (x2 - x1), y2]]))
    expected_wide = np.mean([math.exp(-25.0 / (2 * 2 * area * (2 * sg) ** 2)) for sg in SIGMAS])
    assert score(torso, wide, pred_coco=coco).oks == pytest.approx(expected_wide, rel=1e-12)
    assert expected < expected_wide < 1


def test_oks_uses_the_submitted_intrinsics() -> None:
    torso = standing_crowd(5)
    moved = K.copy()
    moved[0, 2] += 900.0  # every projection 900 px to the right
    s = score(torso, truth_of(torso), K=moved)
    assert s.n_matched < 5
    assert s.oks < 0.2


@pytest.mark.parametrize(("s_true", "ss", "ppds"), [(2.0, 0.5, 0.5), (0.5, 0.5, 0.0)])
def test_similarity_transform_aligns_and_scale_score(s_true: float, ss: float, ppds: float) -> None:
    """Truth = s R pred + t. The fit maps predictions onto the truth, so a = s and SS = min(s, 1/s).

    Unaligned, every pairwise distance is off by the factor s: s = 2 gives 1 - |d - 2d| / 2d = 0.5 per pair,
    s = 0.5 gives 1 - |d - d/2| / (d/2) = 0.
    """
    pred = standing_crowd(20, seed=3)
    angle = 0.7
    rot = np.array([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    rot = rot @ np.array([[1, 0, 0], [0, math.cos(0.3), -math.sin(0.3)], [0, math.sin(0.3), math.cos(0.3)]])
    gt_torso = s_true * pred @ rot.T + np.array([3.0, -1.0, 7.0])
    # The 2D truth stays that of the prediction, so the matching is perfect and only the 3D moves.
    gt = dict(truth_of(pred), gt_torso=gt_torso)
    s = score(pred, gt)
    assert s.n_matched == 20
    assert s.scale == pytest.approx(s_true, rel=1e-9)
    assert s.pa_ppds == pytest.approx(1.0, abs=1e-9)
    assert s.ss == pytest.approx(ss, rel=1e-9)
    assert s.ppds == pytest.approx(ppds, abs=1e-9)


def test_similarity_fit_recovers_the_transform() -> None:
    rng = np.random.default_rng(5)
    src = rng.normal(size=(15, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.linalg.det(q))  # a proper rotation
    dst = 1.7 * src @ rot.T + [1.0, 2.0, 3.0]
    a, r, t = similarity_fit(src, dst)
    assert a == pytest.approx(1.7)
    np.testing.assert_allclose(r, rot, atol=1e-12)
    np.testing.assert_allclose(t, [1.0, 2.0, 3.0], atol=1e-12)


def test_mirrored_crowd_is_not_aligned_by_a_reflection() -> None:
    """Truth = the prediction mirrored (x -> -x): every distance is kept (PPDS 1), but no rotation undoes
    a mirror. With C the covariance of the predicted centres (eigenvalues l1 >= l2 >= l3), the
    cross-covariance is diag(-1, 1, 1) C, whose SVD has singular values l1, l2, l3 and det(U V^T) = -1, so
    the proper fit flips the weakest axis: a = (l1 + l2 - l3) / (l1 + l2 + l3) < 1 (a reflection would
    give 1). Every distance is then scaled by a, so each pair scores 1 - |a d - d| / d = a: PA-PPDS = a."""
    rng = np.random.default_rng(7)
    pred = standing_crowd(15, seed=7)
    pred[:, 1] += rng.uniform(-3, 3, 15)  # people on stairs and stands: not one plane
    gt_torso = pred * [-1.0, 1.0, 1.0] + [0.5, 0.0, 0.0]
    lam = np.linalg.eigvalsh(np.cov(pred.T, bias=True))
    a = (lam[2] + lam[1] - lam[0]) / lam.sum()
    assert a < 0.99
    s = score(pred, dict(truth_of(pred), gt_torso=gt_torso))
    assert s.ppds == pytest.approx(1.0, abs=1e-12)
    assert s.scale == pytest.approx(a, rel=1e-9)
    assert s.pa_ppds == pytest.approx(a, rel=1e-9)
    assert s.ss == pytest.approx(a, rel=1e-9)
    _, r, _ = similarity_fit(pred, gt_torso)
    assert np.linalg.det(r) == pytest.approx(1.0)
    # Whereas a rotation of the same crowd (180 degrees about y) aligns perfectly.
    turned = score(pred, dict(truth_of(pred), gt_torso=pred * [-1.0, 1.0, -1.0]))
    assert turned.pa_ppds == pytest.approx(1.0) and turned.ss == pytest.approx(1.0)


def test_swapped_depths_lower_pcod_by_the_counted_pairs() -> None:
    """10 people, 45 pairs, ranked by depth. Swapping the depths of ranks 2 and 6 breaks the pair (2, 6)
    and, for each rank k between them (3, 4, 5), both (2, k) and (k, 6): 1 + 2 * 3 = 7 pairs, PCOD 38/45.
    Swapping ranks 0 and 1 (1 pair) and ranks 5 and 8 (1 + 2 * 2 = 5 pairs; no pair across the two swaps
    changes order): 6 pairs, PCOD 39/45."""
    torso = standing_crowd(10, seed=11)
    gt = truth_of(torso)
    rank = np.argsort(torso[:, 2])  # rank[k] = person at depth rank k

    def swapped(pairs: list[tuple[int, int]]) -> np.ndarray:
        pred = torso.copy()
        for a, b in pairs:
            i, j = rank[a], rank[b]
            pred[[i, j], 2] = pred[[j, i], 2]
        return pred

    one = score(swapped([(2, 6)]), gt, pred_coco=torso[:, None, :] + OFFSETS)
    assert one.n_matched == 10
    assert one.pcod == pytest.approx(38 / 45)
    two = score(swapped([(0, 1), (5, 8)]), gt, pred_coco=torso[:, None, :] + OFFSETS)
    assert two.pcod == pytest.approx(39 / 45)


def test_pcod_compares_against_the_truth_projected_on_the_ground() -> None:
    """Plane n = (0, -0.8, -0.6), D = 1.6. c1 = (0, 0, 10): n.c1 + D = -4.4, so it projects to
    c1 - (n.c1 + D) n = c1 + 4.4 n = (0, -3.52, 7.36); c2 = (0, -2, 9): n.c2 + D = -2.2, projection
    c2 + 2.2 n = (0, -3.76, 7.68). The torso depths order c2 before c1, the projected ones c1 before c2:
    a prediction equal to the truth gets PCOD 0 (and 1 with the projection's sign wrong or left out)."""
    plane = np.array([0.0, -0.8, -0.6, 1.6])
    torso = np.array([[0.0, 0.0, 10.0], [0.0, -2.0, 9.0]])
    np.testing.assert_allclose(
        project_to_plane(torso, plane), [[0, -3.52, 7.36], [0, -3.76, 7.68]], atol=1e-12
    )
    s = score(torso, dict(truth_of(torso), gt_plane=plane))
    assert s.n_matched == 2
    assert s.pcod == 0.0
    assert s.pa_ppds == pytest.approx(1.0)


def test_depth_ties_count_as_wrong() -> None:
    torso = standing_crowd(4, seed=2)
    pred = torso.copy()
    pred[:, 2] = 15.0  # every predicted depth equal: all 6 pairs tie
    s = score(pred, truth_of(torso), pred_coco=torso[:, None, :] + OFFSETS)
    assert s.pcod == 0.0


def test_ten_percent_extra_predictions() -> None:
    """P / G = 55 / 50 = 1.10: RP = 1.10 - 1.02 = 0.08 and the score drops by 0.5 * 0.08."""
    torso = standing_crowd(50, seed=4)
    pred = np.concatenate([torso, torso[:5]])  # duplicates: each GT still takes the first copy
    s = score(pred, truth_of(torso))
    assert (s.n_matched, s.n_pred, s.n_gt) == (50, 55, 50)
    assert s.rp == pytest.approx(0.08)
    assert s.score == pytest.approx(0.96)
    assert score(torso[:, :][np.r_[0:50, 0]], truth_of(torso)).rp == 0.0  # 51 / 50 is within 1.02


@pytest.mark.parametrize("k", [1, 5, 10])
def test_missing_people_scale_ppds_pcod_oks_by_recall(k: int) -> None:
    """Dropping k of G = 20 predictions: r = (20 - k) / 20 multiplies PPDS, PA-PPDS, PCOD and OKS;
    SS is not multiplied; RP is 0."""
    torso = standing_crowd(20, seed=9)
    s = score(torso[: 20 - k], truth_of(torso))
    r = (20 - k) / 20
    assert s.r == r and s.n_matched == 20 - k
    for name in ("ppds", "pa_ppds", "pcod", "oks"):
        assert getattr(s, name) == pytest.approx(r), name
    assert s.ss == pytest.approx(1.0)
    assert s.rp == 0.0
    assert s.score == pytest.approx(0.3 * r + 0.2 + 0.1 * r + 0.4 * r)


def test_greedy_order_beats_a_naive_argmax() -> None:
    """GT A and GT B (B 10 px right of A) both want prediction p0 (8 px right of A: 2 px from B).
    Processed by best OKS, B goes first and takes p0; A is not retried with p1 (30 px right of A)
    although their OKS is well above 1e-6. A per-GT argmax in index order would give A p0."""
    a = np.array([[0.0, 0.6, 10.0]])
    b_coco = a[:, None, :] + OFFSETS
    b_coco[..., 0] += 10.0 * b_coco[..., 2] / F
    gt_coco = np.concatenate([a[:, None, :] + OFFSETS, b_coco])
    gt = truth_of(np.concatenate([a, a]), coco3d=gt_coco)  # same 3D torso: only 2D matters here

    def shifted(px: float) -> np.ndarray:
        c = a[:, None, :] + OFFSETS
        c[..., 0] += px * c[..., 2] / F
        return c

    pred_coco = np.concatenate([shifted(8.0), shifted(30.0)])
    oks = oks_matrix(
        proj(pred_coco), gt["gt_kp2d"], np.full(2, np.prod(np.diff(gt["gt_bbox"][0].reshape(2, 2).T)))
    )
    assert oks[0].argmax() == 0 and oks[1].argmax() == 0 and oks[1, 0] > oks[0, 0]
    assert oks[0, 1] > 1e-3
    s = evaluate_frame(pred_coco, np.concatenate([a, a]), K, **gt)
    assert s.matches.tolist() == [[1, 0]]
    assert s.n_matched == 1 and s.r == 0.5
    assert s.oks == pytest.approx(0.5 * oks[1, 0])
    # One match: no pairs, so no PPDS, PCOD or fitted scale.
    assert (s.ppds, s.pa_ppds, s.pcod, s.ss) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(s.scale)


def _greedy_loop(oks: np.ndarray) -> list[list[int]]:
    """The reference's wording, literally."""
    best = oks.argmax(1)
    best_oks = oks.max(1)
    used: set[int] = set()
    out = []
    for g in sorted(range(len(oks)), key=lambda g: 1 - best_oks[g]):
        if best_oks[g] > 1e-6 and best[g] not in used:
            used.add(int(best[g]))
            out.append([g, int(best[g])])
    return out


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_greedy_equals_the_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g, p = rng.integers(1, 40, 2)
    oks = rng.random((g, p)) ** 8 * (rng.random((g, p)) < 0.3)
    oks[: g // 3] = np.round(oks[: g // 3], 1)  # ties
    matches = greedy_match(oks.argmax(1), oks.max(1))
    assert matches.tolist() == _greedy_loop(oks)


def test_unmatchable_prediction_scores_zero() -> None:
    torso = standing_crowd(3)
    far = torso[:1].copy()
    coco = far[:, None, :] + OFFSETS
    coco[..., 0] += 5000.0 * coco[..., 2] / F  # 5000 px away: OKS underflows below 1e-6
    s = score(far, truth_of(torso), pred_coco=coco)
    assert s.n_matched == 0 and s.r == 0.0
    assert (s.pa_ppds, s.ss, s.pcod, s.oks, s.rp, s.score) == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def test_joints_behind_the_camera_and_unannotated_joints_add_nothing() -> None:
    torso = standing_crowd(2)
    gt = truth_of(torso)
    gt["gt_kp2d"][0, :5] = np.nan  # person 0's head not annotated: 12 of 17 joints can agree
    s = score(torso, gt)
    assert sorted(s.match_oks.tolist()) == pytest.approx([12 / 17, 1.0])
    behind = torso[:, None, :] + OFFSETS
    behind[..., 2] *= -1
    s = score(torso, truth_of(torso), pred_coco=behind)
    assert s.n_matched == 0


@pytest.mark.parametrize(("n_pred", "rp", "total"), [(0, 0.0, 0.0), (3, 1.0, -0.5)])
def test_frame_without_people(n_pred: int, rp: float, total: float) -> None:
    torso = standing_crowd(3)[:n_pred]
    s = score(torso, truth_of(np.zeros((0, 3))))
    assert (s.n_gt, s.n_pred, s.rp, s.score) == (0, n_pred, rp, total)


def test_score_is_the_weighted_sum() -> None:
    torso = standing_crowd(25, seed=13)
    rng = np.random.default_rng(13)
    pred = torso[:22] * 1.1 + rng.normal(0, 0.2, (22, 3))
    coco = torso[:22, None, :] + OFFSETS + rng.normal(0, 0.01, (22, 17, 3))
    s = score(pred, truth_of(torso), pred_coco=coco)
    assert 0 < s.score < 1
    assert s.score == pytest.approx(expected_score(s))


def test_bad_shapes_are_refused() -> None:
    torso = standing_crowd(2)
    with pytest.raises(ValueError, match=r"pred_torso must have shape \(2, 3\), got \(3, 3\)"):
        evaluate_frame(torso[:, None] + OFFSETS, np.zeros((3, 3)), K, **truth_of(torso))


@pytest.mark.parametrize(
    ("frame", "scene"),
    [
        ("playground1_00_000123.jpg", "playground1_00"),
        ("images/stadiumEntrance_01/stadiumEntrance_01_000004.jpg", "stadiumEntrance_01"),
        ("plaza.jpg", "plaza"),
        ("000007.jpg", "000007"),
    ],
)
def test_scene_names(frame: str, scene: str) -> None:
    assert scene_of(frame) == scene


# ------------------------------------------------------------------------------------------------- glue

# A toy body in place of SMPL: raw joints around the origin; betas[0] grows the body by 10 % a unit.
# Joints other than the hips and shoulders sit far away, so a wrong torso index shows.
JOINTS24 = np.full((24, 3), 5.0)
JOINTS24[[1, 2, 16, 17]] = [[0.10, 0.12, 0.0], [-0.10, 0.12, 0.0], [0.18, -0.35, 0.0], [-0.18, -0.35, 0.0]]
RAW_TORSO = JOINTS24[[1, 2, 16, 17]].mean(0)  # (0, -0.115, 0)
RAW_COCO = RAW_TORSO + OFFSETS


def toy_body(pose: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    assert pose.dtype == np.float32 and shape.dtype == np.float32
    assert pose.shape[1:] == (72,) and shape.shape[1:] == (10,) and len(pose) == len(shape)
    size = (1.0 + 0.1 * shape[:, 0]).astype(np.float64)[:, None, None]
    return JOINTS24[None] * size, RAW_COCO[None] * size


def predictions_for(torso: np.ndarray, scale: np.ndarray, beta0: np.ndarray) -> FramePrediction:
    """SMPL parameters that put the toy body's torso centre at `torso`."""
    n = len(torso)
    shape = np.zeros((n, 10))
    shape[:, 0] = beta0
    size = 1.0 + 0.1 * beta0
    trans = torso - scale[:, None] * size[:, None] * RAW_TORSO
    return FramePrediction.from_arrays(K, np.zeros((n, 72)), shape, trans, scale)


def truth_doc(frames: dict[str, np.ndarray], coco3d: dict[str, np.ndarray] | None = None) -> Truth:
    info: dict[str, list[dict[str, Any]]] = {}
    for frame, torso in frames.items():
        arrays = truth_of(torso, None if coco3d is None else coco3d[frame])
        people = []
        for i in range(len(torso)):
            kp = arrays["gt_kp2d"][i] / [W, H]
            foot = project_to_plane(torso[i : i + 1], PLANE)[0]
            people.append(
                {
                    "bbox": arrays["gt_bbox"][i].tolist(),
                    "keypoints": [[float(x), float(y), 2] for x, y in kp],
                    "type": "normal",
                    "hvip2d": proj(foot).tolist(),
                    "hvip3d": foot.tolist(),
                    "torso_center": torso[i].tolist(),
                    "smpl": {"pose": [0.0] * 72, "shape": [0.0] * 10, "transl": torso[i].tolist()},
                    "visibility": 1.0,
                }
            )
        info[frame] = people
    return Truth.model_validate(
        {
            "image_shape": {"height": H, "width": W},
            "intrinsics": K.tolist(),
            "ground_plane": PLANE.tolist(),
            "body_model": {"name": "toy", "sha256": "0" * 64},
            "frame_info": info,
        }
    )


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_glue_places_scaled_bodies_like_the_submission_says(scale: float) -> None:
    """points = scale_smpl * body(pose, shape) + trans_cam; with the truth drawn from the same bodies the
    score is 1, which fails if the scale were applied after the translation or to the wrong joints."""
    torso = standing_crowd(8, seed=21)
    beta0 = np.linspace(-1, 1, 8)
    scales = np.full(8, scale)
    size = (scale * (1 + 0.1 * beta0))[:, None, None]
    coco3d = torso[:, None, :] + size * (RAW_COCO - RAW_TORSO)
    frame = "plaza_000001.jpg"
    report = evaluate(
        {frame: predictions_for(torso, scales, beta0)},
        {frame: truth_doc({frame: torso}, {frame: coco3d})},
        toy_body,
    )
    (row,) = report.frames
    assert row.scores.n_matched == 8
    assert row.scores.oks == pytest.approx(1.0)
    assert row.scores.score == pytest.approx(1.0)


def test_scene_and_overall_means(tmp_path: Path) -> None:
    """sceneA: one perfect frame (1.0) and one without predictions (0.0) -> 0.5; sceneB: 1.0.
    Overall, weighted by frames: (2 * 0.5 + 1 * 1.0) / 3 = 2/3 (not the mean of scenes, 0.75)."""
    a1, a2, b1 = standing_crowd(6, 1), standing_crowd(4, 2), standing_crowd(5, 3)
    truth_a = truth_doc({"sceneA_000001.jpg": a1, "sceneA_000002.jpg": a2})
    truths = {"sceneA_000001.jpg": truth_a, "sceneA_000002.jpg": truth_a}
    truths["sceneB_000001.jpg"] = truth_doc({"sceneB_000001.jpg": b1})
    preds = {
        "sceneA_000001.jpg": predictions_for(a1, np.ones(6), np.zeros(6)),
        "sceneB_000001.jpg": predictions_for(b1, np.ones(5), np.zeros(5)),
    }
    report = evaluate(preds, truths, toy_body)
    assert [row.frame for row in report.frames] == sorted(truths)
    scores = {row.frame: row.scores.score for row in report.frames}
    assert scores == pytest.approx(
        {"sceneA_000001.jpg": 1.0, "sceneA_000002.jpg": 0.0, "sceneB_000001.jpg": 1.0}
    )
    assert report.scenes["sceneA"].n_frames == 2
    assert report.scenes["sceneA"].means["score"] == pytest.approx(0.5)
    assert report.scenes["sceneB"].means["score"] == pytest.approx(1.0)
    assert report.overall.means["score"] == pytest.approx(2 / 3)
    assert report.overall.means["oks"] == pytest.approx(2 / 3)
    assert (report.overall.n_matched, report.overall.n_pred, report.overall.n_gt) == (11, 11, 15)

    out = tmp_path / "report.json"
    report.to_json(out)
    data = json.loads(out.read_text())
    assert data["overall"]["score"] == pytest.approx(2 / 3)
    assert data["scenes"]["sceneA"]["n_frames"] == 2
    empty = next(f for f in data["frames"] if f["frame"] == "sceneA_000002.jpg")
    assert empty["procrustes_scale"] is None and empty["matches"] == [] and empty["n_gt"] == 4
    full = next(f for f in data["frames"] if f["frame"] == "sceneB_000001.jpg")
    assert sorted(m[:2] for m in full["matches"]) == [[i, i] for i in range(5)]
    table = report.table(frames=True)
    assert "sceneA" in table and "sceneA_000002.jpg" in table and "all" in table
    assert "0.6667" in table


def test_predictions_for_frames_without_truth_are_an_error() -> None:
    a1 = standing_crowd(3)
    truths = {"s_000001.jpg": truth_doc({"s_000001.jpg": a1})}
    preds = {"s_000002.jpg": predictions_for(a1, np.ones(3), np.zeros(3))}
    with pytest.raises(
        InputError, match=r"predictions for 1 frame\(s\) with no ground truth: 's_000002.jpg'"
    ):
        evaluate(preds, truths, toy_body)
    with pytest.raises(InputError, match="does not annotate it"):
        evaluate({}, {"other_000001.jpg": truths["s_000001.jpg"]}, toy_body)
    with pytest.raises(InputError, match="no ground-truth frames"):
        evaluate({}, {}, toy_body)


def test_metrics_per_support_class() -> None:
    """Three seated people predicted 10% too far along their rays (the same image: scale 1.1) and five
    standing people exactly: per support class the seated ones' median depth error is 0.1 and the
    floor's 0; the frame's median depth ratio is 1, so scaling leaves them; a truth without support
    gives no per-class rows."""
    torso = standing_crowd(8, seed=5)
    frame = "plaza_000001.jpg"
    plain = truth_doc({frame: torso})
    labels = ["floor"] * 5 + ["seat"] * 3
    people = [
        p.model_copy(update={"support": s}) for p, s in zip(plain.frame_info[frame], labels, strict=True)
    ]
    truth = plain.model_copy(update={"frame_info": {frame: people}})
    far = np.array([1.0] * 5 + [1.1] * 3)
    pred = predictions_for(torso * far[:, None], far, np.zeros(8))
    report = evaluate({frame: pred}, {frame: truth}, toy_body)
    seat, floor = report.by_support["seat"], report.by_support["floor"]
    assert (seat["n_gt"], seat["n_matched"], floor["n_gt"]) == (3, 3, 5)
    assert seat["recall"] == 1.0 and seat["oks"] == pytest.approx(1.0)
    assert seat["depth_err"] == pytest.approx(0.1) and floor["depth_err"] == pytest.approx(0.0, abs=1e-9)
    assert seat["depth_err_scaled"] == pytest.approx(0.1)
    assert "seat" in report.table() and report.to_dict()["by_support"]["seat"]["n_gt"] == 3
    assert evaluate({frame: pred}, {frame: plain}, toy_body).by_support == {}


def test_frame_lists_and_the_warning_for_unpredicted_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`evaluate` scores a truth frame without predictions as 0 and says so in one warning line."""
    from pipeline.cli import main
    from schemas.predict import write_predictions
    from schemas.truth import write_truth
    from tasks.evaluate import some_names, unpredicted_frames

    assert some_names(["a", "b"]) == "'a', 'b'"
    assert some_names(list("abcde"), 3) == "'a', 'b', 'c' and 2 more"
    a1, a2 = standing_crowd(3, 1), standing_crowd(4, 2)
    truth = truth_doc({"s_000001.jpg": a1, "s_000002.jpg": a2})
    preds = {"s_000001.jpg": predictions_for(a1, np.ones(3), np.zeros(3))}
    assert unpredicted_frames(preds, {f: truth for f in truth.frame_info}) == ["s_000002.jpg"]
    write_truth(truth, tmp_path / "truth.json")
    write_predictions(preds, tmp_path / "predict.json")
    argv = ["evaluate", "--pred", str(tmp_path / "predict.json"), "--gt", str(tmp_path / "truth.json")]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert out.err.splitlines() == ["warning: no prediction for 1 truth frame(s), scored 0: 's_000002.jpg'"]
    assert out.out.startswith("scene ")  # the table is printed as before
    write_predictions(
        {**preds, "s_000002.jpg": predictions_for(a2, np.ones(4), np.zeros(4))}, tmp_path / "p.json"
    )
    assert main([*argv[:2], str(tmp_path / "p.json"), *argv[3:]]) == 0
    assert capsys.readouterr().err == ""
