"""How real synthetic frames look to real networks: detector recall and 2D-pose OKS on a rendered frame.

A synthetic world is only useful if the pipeline's real, COCO-trained networks see its people as people.
This runs the shipped detector over the frame exactly as the detect stage tiles it (tasks/detect.py) and
the shipped pose network on ground-truth boxes (tasks/pose2d.py), and scores both against the frame's
truth. The same measurement on real annotated photographs gives the reference to compare with.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np

from schemas.truth import Truth
from tasks.boxes import area as box_area
from tasks.boxes import coverage, greedy_recall_match
from tasks.detect import Detector, detect_image
from tasks.evaluate import oks_matrix
from tasks.pose2d import PoseModel, estimate


@dataclass(frozen=True)
class Realism:
    people: int  # people in the truth
    tall: int  # people >= min_height px tall (the recall target's population)
    recall_tall: float  # detector recall (IoU >= 0.5) over `tall`
    recall_tall_visible: float  # ... over tall people with visibility >= 0.5
    recall_small: float  # ... over people shorter than min_height
    detections: int  # after the merge
    unmatched: int  # detections matching no person
    posed: int  # tall, mostly visible (>= 0.8) people given to the pose network
    oks_mean: float  # MoveNet OKS on their ground-truth-box crops (area = box area, visible joints)
    oks_median: float
    oks_ge_050: float  # fraction with OKS >= 0.5

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def recall_by_height(
    pred: np.ndarray, gt: np.ndarray, bands: list[tuple[float, float]]
) -> dict[str, tuple[int, float | None]]:
    """Detector recall (IoU >= 0.5) per band of GT box height. pred (P, >= 4), gt (G, 4) pixels ->
    {"lo-hi": (people in the band, recall or None when empty)}."""
    match = greedy_recall_match(pred[:, :4], gt)
    h = gt[:, 3] - gt[:, 1]
    out: dict[str, tuple[int, float | None]] = {}
    for lo, hi in bands:
        sel = (h >= lo) & (h < hi)
        out[f"{lo:g}-{hi:g}"] = (int(sel.sum()), float(np.mean(match[sel] >= 0)) if sel.any() else None)
    return out


def pose_oks(
    image: np.ndarray, boxes: np.ndarray, gt_kp: np.ndarray, gt_vis: np.ndarray, pose: PoseModel,
    context: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """OKS per person of `pose` (a MoveNet-like callable) on box crops made as the pose2d stage makes
    them (tasks/pose2d.estimate).

    image (H, W, 3) uint8 RGB; boxes (N, 4) px; gt_kp (N, 17, 2) px; gt_vis (N, 17) 0/1/2 (0: ignored);
    context (M, 4) px, the image's boxes: given, the other people's are painted out of each crop
    (`pose2d.mask_others`, the stage's default).
    """
    if len(boxes) == 0:
        return np.zeros(0)
    pred = estimate([image], boxes, pose, context=context)[..., :2]
    gt = np.where(gt_vis[..., None] > 0, gt_kp, np.nan)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.array(
        [oks_matrix(pred[i : i + 1], gt[i : i + 1], areas[i : i + 1])[0, 0] for i in range(len(boxes))]
    )


def measure(
    image: np.ndarray, truth: Truth, detector: Detector, pose: PoseModel, min_height: float = 100.0
) -> Realism:
    """Score `detector` (YoloxOnnx-like) and `pose` (MoveNet-like) on a rendered frame and its truth.

    image (H, W, 3) uint8 RGB, the whole frame in memory (realism checks use frames of a few hundred MP
    at most); coarser levels are made tile by tile with the ingest stage's exact 2x downsampling.
    """
    dets = detect_image(image, detector)
    a = truth.arrays()
    people = next(iter(truth.frame_info.values()))
    vis = np.array([p.visibility for p in people])
    h = a.bbox[:, 3] - a.bbox[:, 1]
    match = greedy_recall_match(dets[:, :4], a.bbox)
    tall = h >= min_height

    def recall(sel: np.ndarray) -> float:
        return float(np.mean(match[sel] >= 0)) if sel.any() else float("nan")

    posed = np.flatnonzero(tall & (vis >= 0.8))
    oks = pose_oks(image, a.bbox[posed], a.keypoints[posed], a.keypoint_visibility[posed], pose)
    return Realism(
        people=len(h),
        tall=int(tall.sum()),
        recall_tall=recall(tall),
        recall_tall_visible=recall(tall & (vis >= 0.5)),
        recall_small=recall(~tall),
        detections=len(dets),
        unmatched=int(len(dets) - (match >= 0).sum()),
        posed=len(posed),
        oks_mean=float(oks.mean()) if len(oks) else float("nan"),
        oks_median=float(np.median(oks)) if len(oks) else float("nan"),
        oks_ge_050=float(np.mean(oks >= 0.5)) if len(oks) else float("nan"),
    )


VISIBILITY_BINS = (0.0, 0.25, 0.5, 0.75, 1.01)
HEIGHT_BINS = (0.0, 100.0, 200.0, 400.0, np.inf)
OVERLAP_BINS = (0, 1, 2, 3, 10**9)  # other boxes covering >= 20% of a person's box
ANOTHER_WITHIN = 0.1  # a joint is another person's when it lies this close (x its box height) to theirs


def _bins(values: np.ndarray, edges: tuple[float, ...]) -> list[tuple[str, np.ndarray]]:
    return [(f"{lo:g}-{hi:g}", (values >= lo) & (values < hi)) for lo, hi in itertools.pairwise(edges)]


def pose_errors(
    image: np.ndarray, truth: Truth, pose: PoseModel, mask_others: bool = False
) -> dict[str, object]:
    """The pose network on every ground-truth box of a rendered frame, scored as GigaCrowd scores the
    3D body's projection (OKS over all 17 joints, occluded ones included; area = box area), and what
    crowds do to it: per person OKS, median joint error (box heights) and whether the skeleton is
    mostly another person's (more than half its joints nearer a neighbour's same joint than its own,
    within ANOTHER_WITHIN of the neighbour's box height), binned by visibility, by how many other boxes
    cover at least 20% of the person's box, and by box height; per joint the median error and the
    share that are another's. image (H, W, 3) uint8 RGB, the whole frame; mask_others: the other
    people's boxes painted out of each crop first (tasks/pose2d.paint_out_others)."""
    boxes = truth.arrays().bbox
    # the pose2d stage's own crops (one level: the frame in memory), painted as the stage paints them
    pred = estimate([image], boxes, pose, context=boxes if mask_others else None)[..., :2]
    return crowd_pose_errors(pred.astype(np.float64), truth)


def crowd_pose_errors(pred: np.ndarray, truth: Truth) -> dict[str, object]:
    """pose_errors' scores of predictions pred (G, 17, 2) px, one per ground-truth person (same order)."""
    a = truth.arrays()
    people = next(iter(truth.frame_info.values()))
    vis = np.array([p.visibility for p in people])
    boxes, gt = a.bbox, a.keypoints  # gt (G, 17, 2) px, occluded and out-of-image joints included
    g = len(boxes)
    area = box_area(boxes)
    height = boxes[:, 3] - boxes[:, 1]
    oks = np.array([oks_matrix(pred[i : i + 1], gt[i : i + 1], area[i : i + 1])[0, 0] for i in range(g)])
    err = np.linalg.norm(pred - gt, axis=-1) / height[:, None]  # (G, 17) box heights
    covered = coverage(boxes, boxes) >= 0.2  # box j covers >= 20% of box i
    np.fill_diagonal(covered, False)
    overlaps = covered.sum(1)
    another = np.zeros((g, 17), bool)
    for i in np.flatnonzero(overlaps):
        js = np.flatnonzero(covered[i])
        d_other = np.linalg.norm(pred[i][None] - gt[js], axis=-1) / height[js, None]  # (J, 17)
        d_own = np.linalg.norm(pred[i] - gt[i], axis=-1) / height[js, None]
        another[i] = ((d_other < d_own) & (d_other < ANOTHER_WITHIN)).any(0)
    mostly = another.mean(1) > 0.5

    def row(sel: np.ndarray) -> dict[str, float | int]:
        n = int(sel.sum())
        if not n:
            return {"people": 0}
        return {"people": n, "oks": float(oks[sel].mean()), "joint_err": float(np.nanmedian(err[sel])),
                "mostly_another": float(mostly[sel].mean())}  # fmt: skip

    return {
        "all": row(np.ones(g, bool)),
        "visibility": {k: row(s) for k, s in _bins(vis, VISIBILITY_BINS)},
        "overlaps": {k: row(s) for k, s in _bins(overlaps.astype(float), OVERLAP_BINS)},
        "height_px": {k: row(s) for k, s in _bins(height, HEIGHT_BINS)},
        "joints": {
            "median_err": [float(v) for v in np.nanmedian(err, axis=0)],
            "another": [float(v) for v in another.mean(0)],
        },
    }
