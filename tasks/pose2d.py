"""Top-down 2D pose: square crops around boxes, and keypoints mapped back to full-resolution pixels."""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np


class PoseModel(Protocol):
    """A single-person COCO-17 pose network on square crops (MoveNet, ONNX heatmap/SimCC models)."""

    size: int  # crop side, pixels

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """crops (N, size, size, 3) uint8 RGB -> (N, 17, 3) x, y in crop pixels, confidence."""
        ...


def crop_affine(box: np.ndarray, size: int, scale: float = 1.25) -> np.ndarray:
    """box (4,) x1, y1, x2, y2 pixels -> (2, 3) affine from image pixels to a size x size crop.

    The crop is the square of side scale * max(box w, box h) centred on the box, so the person keeps
    its aspect ratio and some context, as single-person pose networks are trained.
    """
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = scale * max(box[2] - box[0], box[3] - box[1], 1.0)
    s = size / side
    return np.array([[s, 0.0, size / 2 - s * cx], [0.0, s, size / 2 - s * cy]])


def crop(image: np.ndarray, box: np.ndarray, size: int, scale: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """image (H, W, 3) uint8 -> (crop (size, size, 3) uint8, affine (2, 3) image -> crop).

    Outside the image is black. Downscaling uses area averaging (no aliasing on large people).
    """
    a = crop_affine(box, size, scale)
    interp = cv2.INTER_AREA if a[0, 0] < 1 else cv2.INTER_LINEAR
    out = cv2.warpAffine(image, a, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out, a


def to_image(kp: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """kp (..., 17, 3) x, y in crop pixels, score; affine (2, 3) image -> crop -> same in image pixels."""
    s, t = affine[0, 0], affine[:, 2]
    out = kp.astype(np.float64, copy=True)
    out[..., :2] = (kp[..., :2] - t) / s
    return out
