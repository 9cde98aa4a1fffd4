"""Evaluate: the GigaCrowd metrics of predictions against ground truth, as in reference/gigacrowd.md.

Pure numpy. `evaluate_frame` scores one frame from arrays; `evaluate` is the glue from predict.json and
truth.json models, through a body function, to a `Report` (per frame, per scene, overall).

Per frame, with G ground-truth people and P predictions (camera frame: x right, y down, z forward):
1. Matching. Project every predicted COCO-17 joint with the submitted K; OKS against every GT person,
   `mean_k exp(-d_k^2 / (2 * area * (2 sigma_k)^2))`, area = GT box area, all 17 joints, visibility
   ignored. Each GT takes its best prediction; GT people are taken in increasing (1 - best OKS); a pair
   is accepted when OKS > 1e-6 and the prediction is unused; a GT that loses is not retried.
   M = matched pairs, r = M / max(G, 1).
2. PPDS: mean over matched pairs i < j of max(0, 1 - | |P_i-P_j| - |Q_i-Q_j| | / |Q_i-Q_j|) on torso
   centres (P predicted, Q GT), times r.
3. PA-PPDS: PPDS after the similarity (rotation, translation, scale a; no reflection) fitted by
   least squares from the matched predicted torso centres onto the GT ones (Umeyama 1991).
4. SS = a if a <= 1 else 1 / a; not times r.
5. PCOD: fraction of matched pairs i < j with (p_j.z - p_i.z) * (h_j.z - h_i.z) > 0, p the predicted
   torso centre, h the GT torso centre projected onto the GT ground plane; ties are wrong; times r.
6. OKS: mean OKS of the matched pairs, times r.
7. RP = clip(P / G - 1.02, 0, 1).
8. score = 0.3 PA-PPDS + 0.2 SS + 0.1 PCOD + 0.4 OKS - 0.5 RP.
Frames are averaged per scene (scene = frame name less its extension and trailing `_<digits>`); the
overall figure is the mean of scene means weighted by their number of frames.

Choices where the reference is silent (the challenge's evaluator is not public):
- A predicted joint at or behind the camera plane (z <= 0) has no image position: it adds 0 to OKS.
  A GT person whose keypoints are null adds 0 for every joint: it counts in G and is never matched.
  Every GT person counts in G, whatever its `type` (ghost included).
- Ties: a GT's best prediction is the lowest-index one among equal OKS; GT people with equal
  (1 - best OKS) are taken in index order.
- OKS area is the GT box area in full-resolution pixels^2, plus COCO's np.spacing(1) so a zero-area
  box gives OKS 0 rather than NaN.
- A PPDS pair whose GT distance is 0 scores 1 if the predicted distance is 0 too, else 0.
- M < 2: PPDS, PA-PPDS, PCOD and SS are 0. No similarity can be fitted to fewer than two points, and
  SS = 1 there would reward predicting one person. All matched predicted centres identical: a = 0.
- The fit maps predictions onto the truth, so a = (GT size) / (predicted size): a crowd predicted at
  half its true size gives a = 2 and SS = 1/2.
- PCOD depth is the camera-frame z coordinate (the formula's `.z`), not the distance to the camera.
  The predicted torso centre is used as is; the GT one is projected orthogonally onto its plane
  (the exact foot of the perpendicular, whatever the normal's length).
- RP with G = 0: 1 if P > 0 else 0.
- The body is the neutral one (as the reference says) whatever `gender` a prediction names.
- A truth frame without predictions scores as an empty prediction (r = 0, score 0).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import numpy as np

from schemas.io import atomic_write_text
from schemas.predict import FramePrediction
from schemas.truth import Truth
from tasks import InputError

COCO_SIGMAS = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
     0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
)  # fmt: skip
TORSO_JOINTS = (1, 2, 16, 17)  # SMPL l_hip, r_hip, l_shoulder, r_shoulder
OKS_MIN = 1e-6
RP_ALLOWANCE = 1.02
WEIGHTS = {"pa_ppds": 0.3, "ss": 0.2, "pcod": 0.1, "oks": 0.4, "rp": -0.5}
METRICS = ("pa_ppds", "ss", "pcod", "oks", "rp", "score", "ppds")

# Bounds on temporaries, so a 2000-person frame never builds a G x P x 17 array: OKS is computed for a
# block of GT rows at a time and pairwise terms for a block of rows of the pair matrix (about 2^20
# elements, 8 MiB of float64, per row-block plane), the body for a batch of people (SMPL's skinning
# holds N x 6890 4x4 transforms).
_OKS_BLOCK_ELEMENTS = 1 << 20
_PAIR_BLOCK_ELEMENTS = 1 << 20
_BODY_BATCH = 256


class BodyFn(Protocol):
    """A body model: raw SMPL output in metres, camera axes, before scale and translation."""

    def __call__(self, pose: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """pose (N, 72) float32 axis-angle, shape (N, 10) float32 -> joints24 (N, 24, 3), coco17 (N, 17, 3)"""
        ...


@dataclass(frozen=True, eq=False)
class FrameScores:
    """Every metric of one frame, the counts, and the matching.

    `matches` (M, 2) int64 holds (GT index, prediction index) in the order the greedy matching accepted
    them; `match_oks` (M,) their OKS. `scale` is the Procrustes scale a (NaN when M < 2).
    """

    pa_ppds: float
    ss: float
    pcod: float
    oks: float
    rp: float
    score: float
    ppds: float
    scale: float
    r: float
    n_matched: int
    n_pred: int
    n_gt: int
    matches: np.ndarray
    match_oks: np.ndarray

    def metrics(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in METRICS}


# ---------------------------------------------------------------------------------------------- geometry


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection. points (..., 3) metres, camera frame; K (3, 3) -> (..., 2) pixels.

    Points at or behind the camera plane (depth <= 0) project to NaN.
    """
    uvw = points @ K.T
    w = uvw[..., 2:]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(w > 0, uvw[..., :2] / w, np.nan)


def project_to_plane(points: np.ndarray, plane: np.ndarray) -> np.ndarray:
    """Orthogonal projection onto the plane A x + B y + C z + D = 0. points (N, 3), plane (4,) -> (N, 3)."""
    n, d = plane[:3], plane[3]
    return points - ((points @ n + d) / (n @ n))[:, None] * n


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale a, rotation R (det +1) and translation t minimising sum_i |dst_i - (a R src_i + t)|^2.

    src, dst (M, 3), M >= 1. Umeyama (1991): 1. centre both sets; 2. SVD of their cross-covariance;
    3. flip the weakest axis when U V^T would be a reflection; 4. a = trace(D S) / var(src).
    Returns (a, R (3, 3), t (3,)); a = 0 when every src point is the same.
    """
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = float((s * s).sum()) / len(src)
    u, sv, vt = np.linalg.svd(d.T @ s / len(src))
    signs = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        signs[2] = -1.0
    rot = (u * signs) @ vt
    a = float((sv * signs).sum()) / var_s if var_s > 0 else 0.0
    return a, rot, mu_d - a * rot @ mu_s


# ---------------------------------------------------------------------------------------------- matching


def oks_matrix(pred2d: np.ndarray, gt_kp2d: np.ndarray, gt_area: np.ndarray) -> np.ndarray:
    """COCO OKS of every GT against every prediction, all 17 joints, visibility ignored.

    pred2d (P, 17, 2) pixels (NaN: no position), gt_kp2d (G, 17, 2) pixels (NaN: not annotated),
    gt_area (G,) pixels^2 -> (G, P). A joint with a NaN on either side adds 0.
    """
    # 1 / (2 * area * (2 sigma)^2), per GT and joint.
    inv = 1.0 / (2.0 * (gt_area[:, None] + np.spacing(1)) * (2.0 * COCO_SIGMAS) ** 2)
    has_nan = bool(np.isnan(pred2d).any() or np.isnan(gt_kp2d).any())
    # One joint at a time on contiguous (G, P) planes: about 1.5x faster than a (G, P, 17) array.
    px, py = np.ascontiguousarray(pred2d[:, :, 0].T), np.ascontiguousarray(pred2d[:, :, 1].T)
    total = np.zeros((len(gt_kp2d), len(pred2d)))
    for k in range(len(COCO_SIGMAS)):
        e = px[k][None, :] - gt_kp2d[:, k, 0][:, None]
        e *= e
        dy = py[k][None, :] - gt_kp2d[:, k, 1][:, None]
        dy *= dy
        e += dy
        e *= -inv[:, k][:, None]
        np.exp(e, out=e)
        if has_nan:
            np.nan_to_num(e, copy=False, nan=0.0)
        total += e
    return total / len(COCO_SIGMAS)


def best_predictions(
    pred2d: np.ndarray, gt_kp2d: np.ndarray, gt_area: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each GT's best prediction and its OKS, in blocks of GT rows so memory stays bounded.

    pred2d (P, 17, 2), gt_kp2d (G, 17, 2) pixels, gt_area (G,) pixels^2, P >= 1
    -> best (G,) int64 prediction index (lowest among ties), best_oks (G,).
    """
    g, p = len(gt_kp2d), len(pred2d)
    best = np.zeros(g, dtype=np.int64)
    best_oks = np.zeros(g)
    rows = max(1, _OKS_BLOCK_ELEMENTS // p)
    for g0 in range(0, g, rows):
        block = oks_matrix(pred2d, gt_kp2d[g0 : g0 + rows], gt_area[g0 : g0 + rows])
        best[g0 : g0 + rows] = block.argmax(axis=1)
        best_oks[g0 : g0 + rows] = block[np.arange(len(block)), best[g0 : g0 + rows]]
    return best, best_oks


def greedy_match(best: np.ndarray, best_oks: np.ndarray) -> np.ndarray:
    """GigaCrowd's greedy matching from each GT's best prediction. best (G,) int, best_oks (G,).

    GT people are taken in increasing (1 - best OKS) (stable: ties in index order); one is accepted when
    its OKS > 1e-6 and its prediction is still unused, and a GT that loses is not retried. So a
    prediction goes to the first eligible GT, in that order, that wants it.
    Returns (M, 2) int64 (GT index, prediction index) in acceptance order.
    """
    order = np.argsort(1.0 - best_oks, kind="stable")
    eligible = order[best_oks[order] > OKS_MIN]
    _, first = np.unique(best[eligible], return_index=True)
    gt = eligible[np.sort(first)]
    return np.stack([gt, best[gt]], axis=1).astype(np.int64).reshape(-1, 2)


# ---------------------------------------------------------------------------------------------- pair terms


def _upper_pair_blocks(m: int) -> Iterator[tuple[slice, np.ndarray]]:
    """Row blocks of the upper triangle of an m x m pair matrix: (rows, mask (rows, m) of j > i)."""
    rows = max(1, _PAIR_BLOCK_ELEMENTS // max(m, 1))
    j = np.arange(m)
    for i0 in range(0, m - 1, rows):
        i1 = min(m, i0 + rows)
        yield slice(i0, i1), j[None, :] > np.arange(i0, i1)[:, None]


def _pair_sum(a: np.ndarray, b: np.ndarray, term: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> float:
    """Sum over pairs i < j of term(a_i - a_j, b_i - b_j). a, b (M, D); term: (c, M, D) x 2 -> (c, M)."""
    total = 0.0
    for rows, upper in _upper_pair_blocks(len(a)):
        values = term(a[rows, None, :] - a[None, :, :], b[rows, None, :] - b[None, :, :])
        total += float(values[upper].sum())
    return total


def _distance_agreement(dp: np.ndarray, dq: np.ndarray) -> np.ndarray:
    """max(0, 1 - | |dp| - |dq| | / |dq|) per pair; a pair with |dq| = 0 scores 1 iff |dp| = 0 too."""
    lp = np.sqrt((dp * dp).sum(-1))
    lq = np.sqrt((dq * dq).sum(-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.maximum(0.0, 1.0 - np.abs(lp - lq) / lq)
    return np.where(lq > 0, s, (lp == 0).astype(np.float64))


def _same_order(dp: np.ndarray, dh: np.ndarray) -> np.ndarray:
    return (dp[..., 0] * dh[..., 0]) > 0


def pair_distance_score(p: np.ndarray, q: np.ndarray) -> float:
    """Mean pairwise distance agreement of p (M, 3) to q (M, 3), metres; M >= 2. Not times r."""
    m = len(p)
    return _pair_sum(p, q, _distance_agreement) / (m * (m - 1) / 2)


def ordinal_depth_score(p_depth: np.ndarray, h_depth: np.ndarray) -> float:
    """Fraction of pairs i < j ordered alike by p_depth (M,) and h_depth (M,) (ties wrong); M >= 2."""
    m = len(p_depth)
    return _pair_sum(p_depth[:, None], h_depth[:, None], _same_order) / (m * (m - 1) / 2)


# ---------------------------------------------------------------------------------------------- one frame


def redundancy_penalty(n_pred: int, n_gt: int) -> float:
    """RP = clip(P / G - 1.02, 0, 1); with G = 0, 1 if there is any prediction."""
    if n_gt == 0:
        return 1.0 if n_pred else 0.0
    return float(np.clip(n_pred / n_gt - RP_ALLOWANCE, 0.0, 1.0))


def _check_shape(name: str, a: np.ndarray, shape: tuple[int | None, ...]) -> None:
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape, strict=True)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")


def evaluate_frame(
    pred_coco3d: np.ndarray,
    pred_torso: np.ndarray,
    K: np.ndarray,
    gt_kp2d: np.ndarray,
    gt_bbox: np.ndarray,
    gt_torso: np.ndarray,
    gt_plane: np.ndarray,
) -> FrameScores:
    """Score one frame (the module docstring gives the definitions and the choices made).

    pred_coco3d (P, 17, 3) predicted COCO-17 joints, metres, camera frame; pred_torso (P, 3) metres;
    K (3, 3) the submitted intrinsics, pixels; gt_kp2d (G, 17, 2) full-resolution pixels (NaN where not
    annotated); gt_bbox (G, 4) x1, y1, x2, y2 pixels; gt_torso (G, 3) metres; gt_plane (4,) A, B, C, D.
    """
    pred_coco3d, pred_torso, K = (np.asarray(a, dtype=np.float64) for a in (pred_coco3d, pred_torso, K))
    gt_kp2d, gt_bbox, gt_torso, gt_plane = (
        np.asarray(a, dtype=np.float64) for a in (gt_kp2d, gt_bbox, gt_torso, gt_plane)
    )
    n_joints = len(COCO_SIGMAS)
    _check_shape("pred_coco3d", pred_coco3d, (None, n_joints, 3))
    _check_shape("pred_torso", pred_torso, (len(pred_coco3d), 3))
    _check_shape("K", K, (3, 3))
    _check_shape("gt_kp2d", gt_kp2d, (None, n_joints, 2))
    _check_shape("gt_bbox", gt_bbox, (len(gt_kp2d), 4))
    _check_shape("gt_torso", gt_torso, (len(gt_kp2d), 3))
    _check_shape("gt_plane", gt_plane, (4,))
    n_pred, n_gt = len(pred_coco3d), len(gt_kp2d)

    # 1. Greedy OKS matching.
    if n_pred and n_gt:
        area = (gt_bbox[:, 2] - gt_bbox[:, 0]) * (gt_bbox[:, 3] - gt_bbox[:, 1])
        best, best_oks = best_predictions(project(pred_coco3d, K), gt_kp2d, area)
        matches = greedy_match(best, best_oks)
        match_oks = best_oks[matches[:, 0]]
    else:
        matches, match_oks = np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    m = len(matches)
    r = m / max(n_gt, 1)

    # 2-5. Torso-centre metrics over the matched pairs.
    ppds = pa_ppds = pcod = ss = 0.0
    scale = math.nan
    if m >= 2:
        p, q = pred_torso[matches[:, 1]], gt_torso[matches[:, 0]]
        ppds = pair_distance_score(p, q) * r
        scale, rot, t = similarity_fit(p, q)
        pa_ppds = pair_distance_score(scale * p @ rot.T + t, q) * r
        ss = scale if scale <= 1.0 else 1.0 / scale
        h = project_to_plane(q, gt_plane)
        pcod = ordinal_depth_score(p[:, 2], h[:, 2]) * r

    # 6-8.
    oks = float(match_oks.mean()) * r if m else 0.0
    rp = redundancy_penalty(n_pred, n_gt)
    values = {"pa_ppds": pa_ppds, "ss": ss, "pcod": pcod, "oks": oks, "rp": rp}
    score = sum(WEIGHTS[k] * v for k, v in values.items())
    return FrameScores(
        pa_ppds=pa_ppds,
        ss=ss,
        pcod=pcod,
        oks=oks,
        rp=rp,
        score=score,
        ppds=ppds,
        scale=scale,
        r=r,
        n_matched=m,
        n_pred=n_pred,
        n_gt=n_gt,
        matches=matches,
        match_oks=match_oks,
    )


# ---------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class FrameRow:
    frame: str
    scene: str
    scores: FrameScores


@dataclass(frozen=True)
class Summary:
    """Means of the metrics over frames, and total counts."""

    n_frames: int
    means: dict[str, float]
    n_matched: int
    n_pred: int
    n_gt: int


@dataclass
class _SupportTally:
    """One support class's people over frames: how many, the matched ones' OKS and torso depths."""

    n_gt: int = 0
    oks: list[float] = field(default_factory=list)
    depth_err: list[float] = field(default_factory=list)
    depth_err_scaled: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        m = len(self.oks)
        med = (lambda v: float(np.median(v))) if m else (lambda v: math.nan)
        return {"n_gt": self.n_gt, "n_matched": m, "recall": m / max(self.n_gt, 1),
                "oks": float(np.mean(self.oks)) if m else math.nan, "depth_err": med(self.depth_err),
                "depth_err_scaled": med(self.depth_err_scaled)}  # fmt: skip


def support_tallies(
    tallies: dict[str, _SupportTally], support: tuple[str | None, ...], scores: FrameScores,
    pred_torso: np.ndarray, gt_torso: np.ndarray,
) -> None:  # fmt: skip
    """Add one frame's people to the per-support tallies (truth annotated with support only): per
    matched person the OKS and the relative torso-depth error |z_pred - z_gt| / z_gt, also after
    scaling the frame's predicted depths by the median z_gt / z_pred of its matches (a wrong focal or
    a wrong crowd scale moves everyone alike; this shows what is left per class)."""
    if not support or all(s is None for s in support):
        return
    g, p = scores.matches[:, 0], scores.matches[:, 1]
    zg, zp = gt_torso[g, 2], pred_torso[p, 2]
    scale = float(np.median(zg / zp)) if len(g) else 1.0
    for cls in {s for s in support if s is not None}:
        tally = tallies.setdefault(cls, _SupportTally())
        tally.n_gt += sum(s == cls for s in support)
        sel = np.array([support[i] == cls for i in g], bool)
        tally.oks += scores.match_oks[sel].tolist()
        tally.depth_err += (np.abs(zp[sel] - zg[sel]) / zg[sel]).tolist()
        tally.depth_err_scaled += (np.abs(scale * zp[sel] - zg[sel]) / zg[sel]).tolist()


@dataclass(frozen=True)
class Report:
    """Per-frame rows (sorted by frame), per-scene means, and the overall means weighted by frames;
    by_support: per truth support class (floor, level_k, seat, bicycle, airborne; where the truth has
    it) people, matched, recall, OKS and median torso-depth errors (support_tallies)."""

    frames: tuple[FrameRow, ...]
    scenes: dict[str, Summary]
    overall: Summary
    by_support: dict[str, dict[str, float | int]] = field(default_factory=dict)

    @classmethod
    def from_rows(
        cls, rows: list[FrameRow], by_support: dict[str, dict[str, float | int]] | None = None
    ) -> Report:
        if not rows:
            raise ValueError("a report needs at least one frame")
        rows = sorted(rows, key=lambda row: row.frame)
        by_scene: dict[str, list[FrameRow]] = {}
        for row in rows:
            by_scene.setdefault(row.scene, []).append(row)
        scenes = {
            name: Summary(
                n_frames=len(group),
                means={k: float(np.mean([getattr(row.scores, k) for row in group])) for k in METRICS},
                n_matched=sum(row.scores.n_matched for row in group),
                n_pred=sum(row.scores.n_pred for row in group),
                n_gt=sum(row.scores.n_gt for row in group),
            )
            for name, group in sorted(by_scene.items())
        }
        n = len(rows)
        overall = Summary(
            n_frames=n,
            means={k: sum(s.means[k] * s.n_frames for s in scenes.values()) / n for k in METRICS},
            n_matched=sum(s.n_matched for s in scenes.values()),
            n_pred=sum(s.n_pred for s in scenes.values()),
            n_gt=sum(s.n_gt for s in scenes.values()),
        )
        return cls(frames=tuple(rows), scenes=scenes, overall=overall, by_support=dict(by_support or {}))

    def to_dict(self) -> dict[str, Any]:
        def summary(s: Summary) -> dict[str, Any]:
            counts = {"n_matched": s.n_matched, "n_pred": s.n_pred, "n_gt": s.n_gt}
            return {"n_frames": s.n_frames, **s.means, **counts}

        def frame(row: FrameRow) -> dict[str, Any]:
            s = row.scores
            return {
                "frame": row.frame,
                "scene": row.scene,
                **s.metrics(),
                "procrustes_scale": None if math.isnan(s.scale) else s.scale,
                "r": s.r,
                "n_matched": s.n_matched,
                "n_pred": s.n_pred,
                "n_gt": s.n_gt,
                # [GT index, prediction index (order in predict.json's person_list), OKS]
                "matches": [
                    [int(g), int(p), float(o)] for (g, p), o in zip(s.matches, s.match_oks, strict=True)
                ],
            }

        return {
            "definitions": "shared/reference/gigacrowd.md; choices in tasks/evaluate.py",
            "weights": WEIGHTS,
            "overall": summary(self.overall),
            "scenes": {name: summary(s) for name, s in self.scenes.items()},
            "frames": [frame(row) for row in self.frames],
        } | ({"by_support": self.by_support} if self.by_support else {})

    def to_json(self, path: Path | str) -> None:
        """Write the report as JSON, atomically."""
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")

    def table(self, frames: bool = False) -> str:
        """A plain-text table: one row per scene (and per frame with `frames`), then the overall row."""
        heads = ("PA-PPDS", "SS", "PCOD", "OKS", "RP", "score")
        keys = ("pa_ppds", "ss", "pcod", "oks", "rp", "score")
        names = [*self.scenes, "all", *([row.frame for row in self.frames] if frames else [])]
        width = max(len("scene"), *(len(n) for n in names))
        lines = [
            f"{'scene':<{width}}  {'frames':>6}  " + "  ".join(f"{h:>7}" for h in heads) + "  matched/pred/gt"
        ]
        rule = "-" * len(lines[0])
        lines.append(rule)

        def line(name: str, n: int | str, means: Mapping[str, float], m: int, p: int, g: int) -> str:
            return (
                f"{name:<{width}}  {n:>6}  " + "  ".join(f"{means[k]:>7.4f}" for k in keys) + f"  {m}/{p}/{g}"
            )

        if frames:
            for row in self.frames:
                s = row.scores
                lines.append(line(row.frame, "", s.metrics(), s.n_matched, s.n_pred, s.n_gt))
            lines.append(rule)
        for name, s in self.scenes.items():
            lines.append(line(name, s.n_frames, s.means, s.n_matched, s.n_pred, s.n_gt))
        o = self.overall
        lines.append(rule)
        lines.append(line("all", o.n_frames, o.means, o.n_matched, o.n_pred, o.n_gt))
        if self.by_support:
            lines += ["", f"{'support':<10}  {'people':>6}  {'recall':>6}  {'OKS':>6}  {'depth err':>9}  "
                      f"{'scaled':>6}"]  # fmt: skip
            for cls, t in sorted(self.by_support.items()):
                lines.append(
                    f"{cls:<10}  {t['n_gt']:>6}  {t['recall']:>6.3f}  {t['oks']:>6.3f}  "
                    f"{t['depth_err']:>9.3f}  {t['depth_err_scaled']:>6.3f}"
                )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- glue

_FRAME_NUMBER = re.compile(r"_\d+$")


def scene_of(frame: str) -> str:
    """'images/playground1_00/playground1_00_000123.jpg' -> 'playground1_00'."""
    stem = PurePosixPath(frame).stem
    return _FRAME_NUMBER.sub("", stem) or stem


def predicted_points(pred: FramePrediction, body: BodyFn) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 joints (P, 17, 3) and torso centres (P, 3) of one frame's predictions, metres, camera frame.

    points = scale_smpl * raw SMPL output + trans_cam; torso = mean of SMPL joints 1, 2, 16, 17.
    """
    a = pred.to_arrays()
    n = len(a.pose)
    coco = np.zeros((n, len(COCO_SIGMAS), 3))
    torso = np.zeros((n, 3))
    for i0 in range(0, n, _BODY_BATCH):
        sl = slice(i0, min(n, i0 + _BODY_BATCH))
        joints24, coco17 = body(a.pose[sl].astype(np.float32), a.shape[sl].astype(np.float32))
        joints24, coco17 = np.asarray(joints24, dtype=np.float64), np.asarray(coco17, dtype=np.float64)
        _check_shape("body joints24", joints24, (sl.stop - sl.start, 24, 3))
        _check_shape("body coco17", coco17, (sl.stop - sl.start, len(COCO_SIGMAS), 3))
        s, t = a.scale_smpl[sl, None], a.trans_cam[sl]
        coco[sl] = s[:, :, None] * coco17 + t[:, None, :]
        torso[sl] = s * joints24[:, TORSO_JOINTS].mean(axis=1) + t
    return coco, torso


def some_names(names: Sequence[str], shown: int = 3) -> str:
    """The first `shown` names, quoted, and how many more: "'a', 'b', 'c' and 2 more"."""
    rest = len(names) - shown
    return ", ".join(map(repr, names[:shown])) + (f" and {rest} more" if rest > 0 else "")


def unpredicted_frames(predictions: Mapping[str, FramePrediction], truths: Mapping[str, Truth]) -> list[str]:
    """The truth frames that predict.json does not hold (each scores as an empty prediction), sorted."""
    return sorted(set(truths) - set(predictions))


def check_frames(predictions: Mapping[str, FramePrediction], truths: Mapping[str, Truth]) -> None:
    """Raise InputError when a predicted frame has no truth or a truth does not hold its frame."""
    if not truths:
        raise InputError("no ground-truth frames to evaluate")
    extra = sorted(set(predictions) - set(truths))
    if extra:
        raise InputError(f"predictions for {len(extra)} frame(s) with no ground truth: {some_names(extra)}")
    for frame, truth in truths.items():
        if frame not in truth.frame_info:
            raise InputError(f"the truth given for frame {frame!r} does not annotate it")


def evaluate(predictions: Mapping[str, FramePrediction], truths: Mapping[str, Truth], body: BodyFn) -> Report:
    """Score every truth frame. predictions and truths are keyed by frame (image file) name.

    A predicted frame without truth is an InputError; a truth frame without predictions scores as an
    empty prediction.
    """
    check_frames(predictions, truths)
    rows = []
    tallies: dict[str, _SupportTally] = {}
    for frame in sorted(truths):
        gt = truths[frame].arrays(frame)
        pred = predictions.get(frame)
        if pred is not None and pred.person_list:
            coco, torso = predicted_points(pred, body)
            K = np.asarray(pred.intrinsic_matrix, dtype=np.float64)
        else:
            coco, torso, K = np.zeros((0, len(COCO_SIGMAS), 3)), np.zeros((0, 3)), gt.K
        scores = evaluate_frame(coco, torso, K, gt.keypoints, gt.bbox, gt.torso, gt.plane)
        rows.append(FrameRow(frame=frame, scene=scene_of(frame), scores=scores))
        support_tallies(tallies, gt.support, scores, torso, gt.torso)
    return Report.from_rows(rows, {cls: t.summary() for cls, t in sorted(tallies.items())})
