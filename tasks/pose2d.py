"""Top-down 2D pose: crops around boxes, and keypoints mapped back to full-resolution pixels.

Crop sizes are an int (square, MoveNet, BlazePose) or (width, height) (mmpose-style 192x256 inputs);
the box is widened or heightened to the crop's aspect ratio, then scaled by `scale` for context.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import cv2
import numpy as np

Size = int | tuple[int, int]  # square side, or (width, height), pixels


class PoseModel(Protocol):
    """A single-person COCO-17 pose network on crops (MoveNet, BlazePose, ONNX heatmap/SimCC models)."""

    size: Size

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """crops (N, h, w, 3) uint8 RGB -> (N, 17, 3) x, y in crop pixels, confidence."""
        ...


def _wh(size: Size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def crop_affine(box: np.ndarray, size: Size, scale: float = 1.25) -> np.ndarray:
    """box (4,) x1, y1, x2, y2 pixels -> (2, 3) affine from image pixels to a crop of `size`.

    The box is grown to the crop's aspect ratio around its centre and scaled by `scale`, so the person
    keeps its proportions and some context, as single-person pose networks are trained (square crops:
    side = scale * max(box w, box h)).
    """
    w, h = _wh(size)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    bw, bh = max(box[2] - box[0], 1.0), max(box[3] - box[1], 1.0)
    bw = max(bw, bh * w / h)
    s = w / (scale * bw)
    return np.array([[s, 0.0, w / 2 - s * cx], [0.0, s, h / 2 - s * cy]])


def _warp(src: np.ndarray, affine: np.ndarray, size: Size) -> np.ndarray:
    """Sample a crop of `size` from `src` (h, w, 3) uint8 through `affine` (2, 3), which maps
    continuous src coordinates (pixel u covers [u, u+1)) to continuous crop coordinates.

    OpenCV puts pixel centres at integer coordinates, so the map is shifted by half a pixel on both
    sides. Outside `src` is black; downscaling uses area averaging (no aliasing on large people).
    """
    s = affine[0, 0]
    m = affine.copy()
    m[:, 2] += 0.5 * s - 0.5
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(src, m, _wh(size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def crop(
    image: np.ndarray, box: np.ndarray, size: Size, scale: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """image (H, W, 3) uint8 full resolution -> (crop (h, w, 3) uint8, affine (2, 3) image -> crop)."""
    a = crop_affine(box, size, scale)
    return _warp(image, a, size), a


def crop_level(box: np.ndarray, size: Size, scale: float, n_levels: int) -> int:
    """The coarsest pyramid level at which the crop around `box` still has at least the crop's own
    resolution (so nothing is lost against reading level 0, and far less is read for large people)."""
    s = crop_affine(box, size, scale)[0, 0]  # crop pixels per full-res pixel
    return int(np.clip(np.floor(np.log2(max(1.0 / s, 1.0))), 0, n_levels - 1))


def crop_from_levels(
    levels: list[Any], box: np.ndarray, size: Size, scale: float = 1.25
) -> tuple[np.ndarray, np.ndarray, int]:
    """Crop around `box` (full-res pixels) from a pyramid (level k downsampled 2^k; arrays indexable
    [y0:y1, x0:x1], e.g. Zarr), reading only the region needed from the level `crop_level` picks.

    Returns (crop (h, w, 3) uint8, affine (2, 3) full-res -> crop, level read).
    """
    a = crop_affine(box, size, scale)
    k = crop_level(box, size, scale, len(levels))
    f = 2.0**k
    lv = levels[k]
    w, h = _wh(size)
    half_w, half_h = w / a[0, 0] / 2, h / a[0, 0] / 2  # half the crop's extent, full-res pixels
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0 = int(np.clip(np.floor((cx - half_w) / f) - 1, 0, lv.shape[1]))
    x1 = int(np.clip(np.ceil((cx + half_w) / f) + 1, 0, lv.shape[1]))
    y0 = int(np.clip(np.floor((cy - half_h) / f) - 1, 0, lv.shape[0]))
    y1 = int(np.clip(np.ceil((cy + half_h) / f) + 1, 0, lv.shape[0]))
    if x1 <= x0 or y1 <= y0:  # the box lies outside the frame
        return np.zeros((h, w, 3), np.uint8), a, k
    region = np.ascontiguousarray(lv[y0:y1, x0:x1])
    # Region pixel u is full-res [(u + x0) f, (u + x0 + 1) f): compose with the full-res -> crop map.
    m = np.array(
        [[a[0, 0] * f, 0.0, a[0, 2] + a[0, 0] * f * x0], [0.0, a[1, 1] * f, a[1, 2] + a[1, 1] * f * y0]]
    )
    return _warp(region, m, size), a, k


def paint_out_others(
    crop_px: np.ndarray, affine: np.ndarray, own: np.ndarray, others: np.ndarray, value: int = 128
) -> np.ndarray:
    """A copy of crop_px (h, w, 3) uint8 with the pixels inside other people's boxes and outside the
    target's own box set to grey `value`: a neighbour's limbs left in a crop pull a single-person
    pose network onto them (benchmarks/README.md, #24). affine (2, 3) image -> crop (uniform scale,
    as crop_affine makes it); own (4,) and others (K, 4) x0, y0, x1, y1 full-resolution pixels."""
    s, t = float(affine[0, 0]), affine[:, 2]
    h, w = crop_px.shape[:2]

    def rect(b: np.ndarray) -> tuple[int, int, int, int]:
        x0, y0 = np.clip(np.floor(b[:2] * s + t), 0, [w, h]).astype(int)
        x1, y1 = np.clip(np.ceil(b[2:] * s + t), 0, [w, h]).astype(int)
        return x0, y0, x1, y1

    mask = np.zeros((h, w), bool)
    for o in np.asarray(others, np.float64).reshape(-1, 4):
        x0, y0, x1, y1 = rect(o)
        mask[y0:y1, x0:x1] = True
    x0, y0, x1, y1 = rect(np.asarray(own, np.float64))
    mask[y0:y1, x0:x1] = False
    out = crop_px.copy()
    out[mask] = value
    return out


def others_near(boxes: np.ndarray, box: np.ndarray, scale: float = 1.25) -> np.ndarray:
    """The boxes (K, 4) of boxes (N, 4) px, other than `box` (4,) itself, that reach into its crop
    (the box enlarged `scale` times about its centre, squared as crop_affine squares it)."""
    c, half = (box[:2] + box[2:]) / 2, scale * float(np.max(box[2:] - box[:2])) / 2
    near = (boxes[:, 2] > c[0] - half) & (boxes[:, 0] < c[0] + half)
    near &= (boxes[:, 3] > c[1] - half) & (boxes[:, 1] < c[1] + half)
    near &= ~(boxes == box).all(1)
    return boxes[near]


def to_image(kp: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """kp (..., 17, 3) x, y in crop pixels, score; affine (2, 3) image -> crop -> same in image pixels."""
    s, t = affine[0, 0], affine[:, 2]
    out = kp.astype(np.float64, copy=True)
    out[..., :2] = (kp[..., :2] - t) / s
    return out


def estimate(
    levels: list[Any], boxes: np.ndarray, model: PoseModel, scale: float = 1.25,
    context: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """Keypoints (N, 17, 3) x, y full-res pixels, confidence for boxes (N, 4) of one frame's pyramid.

    Crops are taken row by row through the frame (neighbours share chunks of a chunk-cached pyramid)
    by a second thread while this one runs the network (decompression releases the GIL); only that
    thread reads `levels`. Crops stay uint8. context (M, 4) px, the frame's boxes: given, the other
    people's boxes are painted out of each crop (paint_out_others).
    """
    out = np.zeros((len(boxes), 17, 3), np.float32)
    order = np.lexsort(((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) // 2048))

    def crops() -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        for i in order:
            c, a, _ = crop_from_levels(levels, boxes[i], model.size, scale)
            if context is not None:
                c = paint_out_others(c, a, boxes[i], others_near(context, boxes[i], scale))
            yield int(i), c, a

    with ThreadPoolExecutor(max_workers=1) as pool:
        source = crops()
        pending = pool.submit(next, source, None)
        while (item := pending.result()) is not None:
            pending = pool.submit(next, source, None)
            i, c, a = item
            out[i] = to_image(model(c[None])[0], a)
    return out


def concat_keypoints(batches: list[np.ndarray]) -> np.ndarray:
    """A frame's keypoints (N, 17, 3) from its batches in order (none: an empty frame)."""
    return np.concatenate(batches) if batches else np.zeros((0, 17, 3), np.float32)
