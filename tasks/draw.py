"""Pictures a person can check: boxes and COCO-17 skeletons drawn over a frame thumbnail."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

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


def ground_axes(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A frame on the ground plane (4,) n . X + d = 0 (n up, camera frame): origin (the point of the
    plane below the camera), right (the camera's x along the ground), forward (away from the camera),
    up; each (3,), metres / unit."""
    n = plane[:3] / np.linalg.norm(plane[:3])
    d = plane[3] / np.linalg.norm(plane[:3])
    origin = -d * n
    fwd = np.array([0.0, 0.0, 1.0]) - n[2] * n
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, n)  # x right, y down, z forward, n up: fwd x n points right
    return origin, right, fwd, n


def _colours(values: np.ndarray) -> np.ndarray:
    """(N,) -> (N, 3) uint8 RGB, the turbo map (blue to red) over the 2nd-98th percentile of values."""
    lo, hi = (float(q) for q in np.percentile(values, [2, 98])) if len(values) else (0.0, 1.0)
    # 30-225 of turbo: its darkest ends would vanish on a dark photo and look alike on white.
    t = np.clip(30 + (values - lo) / (hi - lo if hi > lo else 1.0) * 195, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(t[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1]


def _nice_step(span: float) -> float:
    """A grid step (m) of 1, 2 or 5 times a power of ten giving about 8 lines over `span` m."""
    raw = max(span / 8, 1e-3)
    power = 10.0 ** math.floor(math.log10(raw))
    return float(min((power, 2 * power, 5 * power, 10 * power), key=lambda s: abs(s - raw)))


def birdseye(
    joints: np.ndarray, plane: np.ndarray, focal: float, image_wh: tuple[int, int], size: int = 1024
) -> np.ndarray:
    """Everyone seen from above the fitted ground plane, with the camera and its field of view.

    joints (N, 24, 3) SMPL joints, camera frame m; plane (4,) n . X + d = 0 (n up); focal and image_wh
    in pixels (principal point the centre). A dot per person at the pelvis's foot on the plane,
    coloured by distance from the camera (blue near, red far); grid lines every `step` metres.
    Returns (size, size, 3) uint8 RGB.
    """
    origin, right, fwd, _ = ground_axes(plane)
    p = joints[:, 0] - origin
    u, v = p @ right, p @ fwd
    w, _ = image_wh
    # The image's left and right edges seen from the camera, drawn along the ground.
    edges = [np.array([(x - w / 2) / focal, 0.0, 1.0]) for x in (0, w)]
    # The view spans the bulk of the crowd (1st-99th percentile), so a few far-off false detections
    # do not shrink everyone else to a corner; those outside are counted on the picture.
    pu = np.percentile(u, [1, 99]) if len(u) else np.zeros(2)
    pv = np.percentile(v, [1, 99]) if len(v) else np.ones(2)
    far = max(float(pv[1]) * 1.1, 1.0)
    rays = [(e @ right / max(e @ fwd, 1e-6) * far, far) for e in edges]
    xs = np.concatenate([pu, [0.0], [r[0] for r in rays]])
    ys = np.concatenate([pv, [0.0]])
    lo_x, hi_x, hi_y = float(xs.min()), float(xs.max()), float(ys.max()) * 1.05 + 1
    span = max(hi_x - lo_x, hi_y) * 1.1
    scale = (size - 40) / span
    cx0 = (lo_x + hi_x) / 2

    def px(x: float, y: float) -> tuple[int, int]:
        return round(size / 2 + (x - cx0) * scale), round(size - 20 - y * scale)

    out = np.full((size, size, 3), 250, np.uint8)
    step = _nice_step(span)
    for g in np.arange(np.floor((cx0 - span / 2) / step) * step, cx0 + span / 2, step):
        cv2.line(out, px(g, 0), px(g, span), (225, 225, 225), 1)
    for g in np.arange(0, span, step):
        cv2.line(out, px(cx0 - span, g), px(cx0 + span, g), (225, 225, 225), 1)
        cv2.putText(out, f"{g:g} m", px(cx0 - span / 2, g), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (120, 120, 120), 1)
    for r in rays:
        cv2.line(out, px(0, 0), px(*r), (150, 150, 150), 1, cv2.LINE_AA)
    cam = np.array([px(0, 0), px(-span / 60, -span / 60), px(span / 60, -span / 60)], np.int32)
    cv2.fillConvexPoly(out, cam, (40, 40, 40))
    dist = np.linalg.norm(joints[:, 0], axis=1)
    radius = max(2, round(0.3 * scale))
    outside = 0
    for (x, y), c in zip(zip(u, v, strict=True), _colours(dist), strict=True):
        p = px(x, y)
        if not (0 <= p[0] < size and 0 <= p[1] < size):
            outside += 1
            continue
        cv2.circle(out, p, radius, tuple(int(k) for k in c), -1, cv2.LINE_AA)
    if outside:
        cv2.putText(
            out, f"{outside} beyond the view", (10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (60, 60, 60), 1
        )
    return out


def side_view(joints: np.ndarray, plane: np.ndarray, width: int = 1024, height: int = 384) -> np.ndarray:
    """Everyone from the side: distance along the ground (x) against height above the fitted plane
    (y), a line from the feet to the head per person, coloured by distance; the ground as a line.
    joints (N, 24, 3) camera frame m; plane (4,). Returns (height, width, 3) uint8 RGB."""
    origin, _, fwd, n = ground_axes(plane)
    feet = (joints[:, 7] + joints[:, 8]) / 2
    head = joints[:, 15]
    along = (joints[:, 0] - origin) @ fwd
    h_feet, h_head = feet @ n + plane[3], head @ n + plane[3]
    span_x = max(float(along.max(initial=1.0)) * 1.05, 1.0)
    top = max(float(h_head.max(initial=2.0)), 2.0) + 0.5
    bottom = min(float(h_feet.min(initial=0.0)), 0.0) - 0.5
    sx, sy = (width - 20) / span_x, (height - 20) / (top - bottom)

    def px(x: float, y: float) -> tuple[int, int]:
        return round(10 + x * sx), round(height - 10 - (y - bottom) * sy)

    out = np.full((height, width, 3), 250, np.uint8)
    cv2.line(out, px(0, 0), px(span_x, 0), (120, 120, 120), 1)
    for x, f, h, c in zip(along, h_feet, h_head, _colours(np.linalg.norm(joints[:, 0], axis=1)), strict=True):
        cv2.line(out, px(x, f), px(x, h), tuple(int(k) for k in c), 2, cv2.LINE_AA)
    return out


def region(
    pixels: np.ndarray,
    origin: tuple[int, int],
    boxes: np.ndarray,
    keypoints: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    focal: float,
    pp: tuple[float, float],
) -> np.ndarray:
    """Meshes, then boxes and skeletons, over a full-resolution region of a frame.

    pixels (h, w, 3) uint8 RGB read at full resolution from (x0, y0) = origin; boxes (N, >= 5),
    keypoints (N, 17, 3) and the projection (focal, pp) in full-frame pixels; vertices (N, V, 3) m.
    """
    x0, y0 = origin
    shifted = boxes.astype(np.float64, copy=True)
    shifted[:, [0, 2]] -= x0
    shifted[:, [1, 3]] -= y0
    kp = keypoints.astype(np.float64, copy=True)
    kp[..., 0] -= x0
    kp[..., 1] -= y0
    out = meshes(pixels, 1.0, vertices, faces, focal, (pp[0] - x0, pp[1] - y0))
    return overlay(out, 1.0, shifted, kp)


def thumbnail(levels: list[Any], max_side: int = 4096) -> tuple[np.ndarray, float]:
    """The finest pyramid level at most max_side px on a side, read whole: (H, W, 3) uint8 and its
    scale against full-resolution pixels (0.5^k for level k)."""
    k = thumbnail_level([lv.shape for lv in levels], max_side)
    return np.asarray(levels[k][:]), 0.5**k


def _camera(rows: pa.Table) -> tuple[float, tuple[float, float]]:
    """The focal and principal point (px) of a frame's persons rows (any when there are none: nothing
    is drawn)."""
    first = rows.slice(0, 1).to_pylist()
    return (first[0]["focal"], (first[0]["cx"], first[0]["cy"])) if first else (1.0, (0.0, 0.0))


def frame_meshes(levels: list[Any], rows: pa.Table, body: Any) -> np.ndarray:
    """The people of a frame's persons rows posed by `body` (tasks/models/body.py BodyModel), drawn
    over its thumbnail."""
    from tasks.export import person_meshes

    verts, faces = person_meshes(rows, body)
    return meshes(*thumbnail(levels), verts, faces, *_camera(rows))


def ground_pictures(rows: pa.Table, plane: np.ndarray, image_wh: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """(bird's-eye view, side view) of a frame's persons rows on its ground plane (4,) n . X + d = 0."""
    from schemas.tables import fixed_array

    joints = fixed_array(rows, "joints3d", 24, 3).astype(np.float64)
    focal = float(rows.column("focal")[0].as_py())
    return birdseye(joints, plane, focal, image_wh), side_view(joints, plane)


def region_picture(
    level0: Any, rows: pa.Table, box: tuple[int, int, int, int], body: Any
) -> tuple[np.ndarray, int]:
    """A full-resolution region box = (x0, y0, x1, y1) px of a frame (level0: its pyramid's level 0)
    with the meshes, boxes and skeletons of its persons rows whose boxes reach into it (posed by `body`,
    tasks/models/body.py BodyModel); and how many people that is."""
    from schemas.tables import fixed_array
    from tasks.export import person_meshes

    x0, y0, x1, y1 = box
    boxes = fixed_array(rows, "bbox", 4)
    near = (boxes[:, 2] > x0) & (boxes[:, 0] < x1) & (boxes[:, 3] > y0) & (boxes[:, 1] < y1)
    rows = rows.filter(pa.array(near))
    verts, faces = person_meshes(rows, body)
    scores = rows.column("det_score").to_numpy()[:, None]
    picture = region(
        np.asarray(level0[y0:y1, x0:x1]), (x0, y0), np.concatenate([boxes[near], scores], 1),
        fixed_array(rows, "kp2d", 17, 3), verts, faces, *_camera(rows),
    )  # fmt: skip
    return picture, len(rows)


def write_png(path: Path, picture: np.ndarray) -> None:
    """picture (H, W, 3) uint8 RGB as a PNG at path, atomically."""
    import pyvips

    from schemas.io import atomic_output

    with atomic_output(path) as tmp:
        pyvips.Image.new_from_array(picture, interpretation="srgb").pngsave(str(tmp), compression=3)
