"""How real synthetic frames look to real networks: detector recall and 2D-pose OKS on a rendered frame.

A synthetic world is only useful if the pipeline's real, COCO-trained networks see its people as people.
This runs the shipped detector over the frame exactly as the detect stage tiles it (tasks/detect.py) and
the shipped pose network on ground-truth boxes (tasks/pose2d.py), and scores both against the frame's
truth. The same measurement on real annotated photographs gives the reference to compare with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from schemas.truth import Truth
from tasks.boxes import greedy_recall_match
from tasks.detect import Detector, detect_image
from tasks.evaluate import oks_matrix
from tasks.pose2d import PoseModel, crop, to_image


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
    image: np.ndarray, boxes: np.ndarray, gt_kp: np.ndarray, gt_vis: np.ndarray, pose: PoseModel
) -> np.ndarray:
    """OKS per person of `pose` (a MoveNet-like callable, crops -> (N, 17, 3) crop px) on box crops.

    image (H, W, 3) uint8 RGB; boxes (N, 4) px; gt_kp (N, 17, 2) px; gt_vis (N, 17) 0/1/2 (0: ignored).
    """
    if len(boxes) == 0:
        return np.zeros(0)
    crops, affines = zip(*(crop(image, b, pose.size) for b in boxes), strict=True)
    kp = pose(np.stack(crops))
    pred = np.stack([to_image(k, a) for k, a in zip(kp, affines, strict=True)])[..., :2]
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
