"""Pictures a person can check: boxes and COCO-17 skeletons drawn over a frame thumbnail."""

from __future__ import annotations

import cv2
import numpy as np

# COCO-17 limbs (keypoint index pairs) and a colour per side: left blue, right orange, centre green.
SKELETON = [
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12),
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
]  # fmt: skip
_LEFT, _RIGHT, _MID = (66, 135, 245), (245, 140, 40), (60, 200, 90)


def _limb_colour(a: int, b: int) -> tuple[int, int, int]:
    if a % 2 == 1 and b % 2 == 1:
        return _LEFT
    if a % 2 == 0 and b % 2 == 0 and a > 0:
        return _RIGHT
    return _MID


def overlay(
    image: np.ndarray, scale: float, boxes: np.ndarray, keypoints: np.ndarray | None, min_conf: float = 0.3
) -> np.ndarray:
    """Draw on a copy of `image` (h, w, 3) uint8 RGB, a view of the frame at `scale` (image pixels per
    full-res pixel): boxes (N, >= 5) x1, y1, x2, y2, score and keypoints (N, 17, 3) x, y, confidence in
    full-res pixels; joints below `min_conf` are not drawn."""
    out = image.copy()
    thick = max(1, round(min(image.shape[:2]) / 600))
    for b in boxes:
        p1 = (round(b[0] * scale), round(b[1] * scale))
        p2 = (round(b[2] * scale), round(b[3] * scale))
        cv2.rectangle(out, p1, p2, (230, 30, 30), thick, cv2.LINE_AA)
    if keypoints is not None:
        for kp in keypoints:
            xy = kp[:, :2] * scale
            ok = kp[:, 2] >= min_conf
            for a, b in SKELETON:
                if ok[a] and ok[b]:
                    pa_, pb = tuple(np.round(xy[a]).astype(int)), tuple(np.round(xy[b]).astype(int))
                    cv2.line(out, pa_, pb, _limb_colour(a, b), thick, cv2.LINE_AA)
            for (x, y), good in zip(xy, ok, strict=True):
                if good:
                    cv2.circle(out, (round(x), round(y)), thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return out


def thumbnail_level(levels_shapes: list[tuple[int, ...]], max_side: int = 4096) -> int:
    """The finest pyramid level whose longer side is at most `max_side` (else the coarsest)."""
    for k, shape in enumerate(levels_shapes):
        if max(shape[:2]) <= max_side:
            return k
    return len(levels_shapes) - 1


def meshes(
    image: np.ndarray,
    scale: float,
    vertices: np.ndarray,
    faces: np.ndarray,
    focal: float,
    pp: tuple[float, float],
    alpha: float = 0.7,
) -> np.ndarray:
    """Flat-shaded meshes over a copy of `image` (h, w, 3) uint8 RGB, a view of the frame at `scale`.

    vertices (N, V, 3) metres, OpenCV camera frame; faces (F, 3); focal, pp (principal point) in
    full-res pixels. Painter's algorithm: people far to near, each person's camera-facing faces far to
    near, so a nearer person hides a farther one; one colour per person, shaded by a light from the
    camera, blended with `alpha` so the photo shows through.
    """
    out = image.copy()
    layer = image.copy()
    drawn = np.zeros(image.shape[:2], np.uint8)
    rng = np.random.default_rng(0)
    hues = rng.uniform(0, 180, len(vertices))
    order = np.argsort(-vertices[:, :, 2].mean(1), kind="stable")
    for i in order:
        v = vertices[i]
        if (v[:, 2] <= 0.05).any():
            continue  # behind or at the camera
        tri = v[faces]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        front = np.einsum("fc,fc->f", normal, tri.mean(1)) < 0
        fi = np.flatnonzero(front)
        fi = fi[np.argsort(-tri[fi, :, 2].mean(1), kind="stable")]
        nrm = normal[fi] / np.maximum(np.linalg.norm(normal[fi], axis=1, keepdims=True), 1e-12)
        view = -tri[fi].mean(1) / np.linalg.norm(tri[fi].mean(1), axis=1, keepdims=True)
        shade = 0.35 + 0.65 * np.clip(np.einsum("fc,fc->f", nrm, view), 0, 1)
        hsv = np.array([[[hues[i], 110, 255]]], np.uint8)
        base = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(float)
        uv = (focal * v[:, :2] / v[:, 2:] + np.asarray(pp)) * scale
        pts = np.round(uv[faces[fi]] * 16).astype(np.int32)
        for p, s in zip(pts, shade, strict=True):
            cv2.fillConvexPoly(layer, p, (base * s).tolist(), lineType=cv2.LINE_8, shift=4)
            cv2.fillConvexPoly(drawn, p, 1, lineType=cv2.LINE_8, shift=4)
    mask = drawn.astype(bool)
    out[mask] = (alpha * layer[mask] + (1 - alpha) * image[mask]).astype(np.uint8)
    return out
