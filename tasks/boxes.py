"""Axis-aligned boxes (x1, y1, x2, y2) in pixels: IoU and non-maximum suppression."""

from __future__ import annotations

import cv2
import numpy as np


def area(boxes: np.ndarray) -> np.ndarray:
    """boxes (N, 4) x1, y1, x2, y2 -> (N,) areas in square pixels (empty boxes give 0)."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (N, 4), b (M, 4) -> (N, M) intersection over union."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def coverage(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (N, 4), b (M, 4) -> (N, M) fraction of each a box's area that lies inside each b box."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    return inter / np.maximum(area(a), 1e-12)[:, None]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS: indices of the kept boxes, best score first.

    boxes (N, 4) x1, y1, x2, y2; scores (N,); a box is dropped when its IoU with a kept, better-scored box
    exceeds `iou`. OpenCV's implementation (C++, float rectangles, no +1 pixel convention).
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    xywh = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1)
    # OpenCV keeps scores strictly above a non-negative threshold: shift every score above 0.
    shifted = (scores - scores.min() + 1.0).astype(float).tolist()
    keep = cv2.dnn.NMSBoxes(xywh.astype(np.float64).tolist(), shifted, 0.0, iou)
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    return keep[np.argsort(-scores[keep], kind="stable")]


def greedy_recall_match(pred: np.ndarray, gt: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """Match predictions to GT boxes, best IoU pairs first (each used once).

    pred (P, 4), gt (G, 4) -> (G,) int64 index of the matched prediction, -1 where none reaches `iou`.
    """
    match = np.full(len(gt), -1, dtype=np.int64)
    if len(pred) == 0 or len(gt) == 0:
        return match
    m = iou_matrix(gt, pred)
    g, p = np.nonzero(m >= iou)
    used = np.zeros(len(pred), dtype=bool)
    for k in np.argsort(-m[g, p], kind="stable"):
        if match[g[k]] < 0 and not used[p[k]]:
            match[g[k]] = p[k]
            used[p[k]] = True
    return match
