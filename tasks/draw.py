"""Pictures a person can read without the README: boxes, COCO-17 skeletons, meshes and person ids over
a frame (a thumbnail, or a full-resolution region), and the people on the fitted ground plane from above
and from the side, with axes in metres, a legend and the camera."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

from tasks.support import FLOOR, NOT_JUDGED, NOT_STANDING, OFF_FLOOR

# COCO-17 limbs (keypoint index pairs) and a colour per side: left blue, right orange, centre green.
SKELETON = [
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12),
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
]  # fmt: skip
_LEFT, _RIGHT, _MID = (66, 135, 245), (245, 140, 40), (60, 200, 90)
# Colours of the crowd step's support labels (tasks/support.py), the persons table's `support` column.
_SUPPORT_RGB = {FLOOR: (45, 105, 215), NOT_STANDING: (235, 140, 20), OFF_FLOOR: (205, 35, 35)}
_LEVEL_RGB = ((40, 160, 70), (150, 70, 200), (20, 165, 185))  # level_2, level_3, level_4 and above
_OTHER_RGB = (125, 125, 125)  # not_judged, and any label this file does not know
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_INK, _GRID, _PAPER = (25, 25, 25), (222, 222, 222), 250  # text and frames, grid lines, background


def _limb_colour(a: int, b: int) -> tuple[int, int, int]:
    if a % 2 == 1 and b % 2 == 1:
        return _LEFT
    if a % 2 == 0 and b % 2 == 0 and a > 0:
        return _RIGHT
    return _MID


def label_people(image: np.ndarray, boxes: np.ndarray, ids: np.ndarray) -> int:
    """Write each person's id (the persons table's person_id) on a dark tag just above their box, in
    place, white on near-black so it reads on any photo; boxes (N, >= 4) x1, y1, x2, y2 in `image`'s
    pixels, ids (N,). Larger boxes are labelled first; an id is left out when its box is less than
    twice the tag's height (the tag would hide the person and could be read as a neighbour's) or its
    tag would overlap one already written. When some are left out, a note at the lower left says how
    many ids are shown. Returns how many ids were written."""
    h, w = image.shape[:2]
    fs = float(np.clip(min(h, w) / 2500, 0.5, 0.8))
    thick = 1 if fs < 0.7 else 2
    pad = max(2, round(4 * fs))
    tag_h = cv2.getTextSize("0", _FONT, fs, thick)[0][1] + 2 * pad
    taken = np.zeros((h + 1, w + 1), bool)
    note = _ids_note(len(ids), len(ids))
    note_w = cv2.getTextSize(note, _FONT, fs, thick)[0][0] + 2 * pad
    taken[h - tag_h - 4 :, : note_w + 4] = True  # kept for the note
    heights = boxes[:, 3] - boxes[:, 1]
    written = 0
    for i in np.argsort(-heights, kind="stable"):
        if heights[i] < 2 * tag_h:
            break  # sorted by height: everyone after is smaller
        text = str(int(ids[i]))
        tw = cv2.getTextSize(text, _FONT, fs, thick)[0][0] + 2 * pad
        x = int(np.clip(round(boxes[i, 0]), 0, max(w - tw, 0)))
        y = round(boxes[i, 1]) - tag_h - 1
        y = int(np.clip(y if y >= 0 else boxes[i, 1], 0, max(h - tag_h, 0)))  # inside at the top edge
        if round(boxes[i, 2]) < 0 or round(boxes[i, 0]) >= w or taken[y : y + tag_h, x : x + tw].any():
            continue
        taken[y : y + tag_h + 1, x : x + tw + 1] = True
        _tag(image, text, (x, y), fs, thick, pad)
        written += 1
    if written < len(ids):
        _tag(image, _ids_note(written, len(ids)), (2, h - tag_h - 2), fs, thick, pad)
    return written


def _ids_note(written: int, people: int) -> str:
    return f"person_id shown on {written} of {people} people (the rest too small or crowded to label)"


def _tag(image: np.ndarray, text: str, org: tuple[int, int], fs: float, thick: int, pad: int) -> None:
    """White text on a near-black box whose top left corner is org."""
    (tw, th), _ = cv2.getTextSize(text, _FONT, fs, thick)
    x, y = org
    cv2.rectangle(image, (x, y), (x + tw + 2 * pad - 1, y + th + 2 * pad - 1), (20, 20, 20), -1)
    cv2.putText(image, text, (x + pad, y + pad + th), _FONT, fs, (255, 255, 255), thick, cv2.LINE_AA)


def overlay(
    image: np.ndarray, scale: float, boxes: np.ndarray, keypoints: np.ndarray | None, min_conf: float = 0.3,
    ids: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """Draw on a copy of `image` (h, w, 3) uint8 RGB, a view of the frame at `scale` (image pixels per
    full-res pixel): boxes (N, >= 5) x1, y1, x2, y2, score and keypoints (N, 17, 3) x, y, confidence in
    full-res pixels; joints below `min_conf` are not drawn; ids (N,) person ids written over the boxes
    (label_people)."""
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
    if ids is not None:
        label_people(out, boxes[:, :4] * scale, ids)
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


def _support_rgb(label: str) -> tuple[int, int, int]:
    if label in _SUPPORT_RGB:
        return _SUPPORT_RGB[label]
    if label.startswith("level_") and label[6:].isdigit():
        return _LEVEL_RGB[min(int(label[6:]) - 2, len(_LEVEL_RGB) - 1)]
    return _OTHER_RGB


def support_colours(labels: np.ndarray) -> tuple[np.ndarray, list[tuple[tuple[int, int, int], str]]]:
    """(N,) support labels (tasks/support.py; None counts as not_judged) -> (N, 3) uint8 RGB and the
    legend: (colour, "label (count)") per label present, the floors first."""
    names = [NOT_JUDGED if v is None else str(v) for v in labels]
    rank = {FLOOR: 0, NOT_STANDING: 2, OFF_FLOOR: 3, NOT_JUDGED: 4}
    present = sorted(set(names), key=lambda n: (rank.get(n, 1 if n.startswith("level_") else 5), n))
    legend = [(_support_rgb(n), f"{n} ({names.count(n)})") for n in present]
    return np.array([_support_rgb(n) for n in names], np.uint8).reshape(-1, 3), legend


def _nice_step(span: float, lines: int = 8) -> float:
    """A grid step (m) of 1, 2 or 5 times a power of ten giving about `lines` lines over `span` m."""
    raw = max(span / lines, 1e-3)
    power = 10.0 ** math.floor(math.log10(raw))
    return float(min((power, 2 * power, 5 * power, 10 * power), key=lambda s: abs(s - raw)))


def _put(
    img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5, colour: tuple[int, ...] = _INK,
    align: str = "left",
) -> int:  # fmt: skip
    """Write `text` with its middle at height org[1] and its left end, centre or right end (align) at
    org[0]; returns its width in pixels."""
    (w, h), _ = cv2.getTextSize(text, _FONT, scale, 1)
    x = org[0] - {"left": 0, "centre": w // 2, "right": w}[align]
    cv2.putText(img, text, (x, org[1] + h // 2), _FONT, scale, colour, 1, cv2.LINE_AA)
    return w


def _put_vertical(img: np.ndarray, text: str, centre: tuple[int, int], scale: float = 0.55) -> None:
    """Dark text reading bottom to top (a y axis's title) centred at `centre`, on a light picture."""
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    tile = np.full((h + base + 4, w + 4, 3), 255, np.uint8)
    cv2.putText(tile, text, (2, h + 2), _FONT, scale, _INK, 1, cv2.LINE_AA)
    tile = np.rot90(tile)  # counter-clockwise: the text now reads upwards
    th, tw = tile.shape[:2]
    y0, x0 = max(centre[1] - th // 2, 0), max(centre[0] - tw // 2, 0)
    dst = img[y0 : y0 + th, x0 : x0 + tw]
    dst[:] = np.minimum(dst, tile[: dst.shape[0], : dst.shape[1]])  # ink over the paper


@dataclass(frozen=True)
class _Plot:
    """Metres to pixels: the data rectangle [x_lo, x_hi] x [y_lo, y_hi] (y up) onto the picture's
    pixel box (left, top, right, bottom)."""

    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float
    box: tuple[int, int, int, int]

    def px(self, x: float, y: float) -> tuple[int, int]:
        left, top, right, bottom = self.box
        u = left + (x - self.x_lo) / (self.x_hi - self.x_lo) * (right - left)
        v = bottom - (y - self.y_lo) / (self.y_hi - self.y_lo) * (bottom - top)
        return round(u), round(v)

    def inside(self, p: tuple[int, int]) -> bool:
        return self.box[0] <= p[0] <= self.box[2] and self.box[1] <= p[1] <= self.box[3]

    def per_metre(self) -> tuple[float, float]:
        """Pixels per metre along x and along y."""
        left, top, right, bottom = self.box
        return (right - left) / (self.x_hi - self.x_lo), (bottom - top) / (self.y_hi - self.y_lo)


def _ticks(lo: float, hi: float, step: float) -> np.ndarray:
    return np.arange(math.ceil(lo / step) * step, hi + step * 1e-6, step) + 0.0  # + 0.0: no "-0"


def _axes(img: np.ndarray, plot: _Plot, steps: tuple[float, float], titles: tuple[str, str]) -> None:
    """Grid lines every steps (x, y) metres, the plot's frame, tick labels and the axis titles."""
    left, top, right, bottom = plot.box
    for g in _ticks(plot.x_lo, plot.x_hi, steps[0]):
        x = plot.px(g, plot.y_lo)[0]
        cv2.line(img, (x, top), (x, bottom), _GRID, 1)
        cv2.line(img, (x, bottom), (x, bottom + 5), _INK, 1)
        _put(img, f"{g:g}", (x, bottom + 16), align="centre")
    for g in _ticks(plot.y_lo, plot.y_hi, steps[1]):
        y = plot.px(plot.x_lo, g)[1]
        cv2.line(img, (left, y), (right, y), _GRID, 1)
        cv2.line(img, (left - 5, y), (left, y), _INK, 1)
        _put(img, f"{g:g}", (left - 8, y), align="right")
    cv2.rectangle(img, (left, top), (right, bottom), (90, 90, 90), 1)
    _put(img, titles[0], ((left + right) // 2, bottom + 40), 0.55, align="centre")
    _put_vertical(img, titles[1], (16, (top + bottom) // 2))


def _header(img: np.ndarray, title: str, note: str, legend: list[tuple[tuple[int, int, int], str]]) -> None:
    """Title, a line of explanation and the colour legend (the crowd step's support labels) on top."""
    _put(img, title, (12, 16), 0.6)
    _put(img, note, (12, 40), 0.45)
    x = 12 + _put(img, "colour: support (persons column)", (12, 62), 0.45) + 14
    for colour, label in legend:
        cv2.rectangle(img, (x, 56), (x + 12, 68), colour, -1)
        x += 18 + _put(img, label, (x + 18, 62), 0.45) + 14


def _bulk(values: np.ndarray, empty: tuple[float, float]) -> tuple[float, float]:
    """The range a view gives values (N,): their 1st-99th percentiles widened by a quarter of that span
    each way, never past the extremes; so a few far-off false detections do not shrink everyone else to
    a corner (the views count who falls outside). `empty` when there are none."""
    if not len(values):
        return empty
    lo, hi = (float(q) for q in np.percentile(values, [1, 99]))
    return max(float(values.min()), lo - (hi - lo) / 4), min(float(values.max()), hi + (hi - lo) / 4)


def _birdseye_plot(u: np.ndarray, v: np.ndarray, rays: list[tuple[float, float]], size: int) -> _Plot:
    """The bird's-eye view's metres at one scale on both axes: the bulk of the crowd (_bulk), the camera
    and the ends of its field of view's edges."""
    xs = np.concatenate([_bulk(u, (0.0, 0.0)), [0.0], [r[0] for r in rays]])
    lo_x, hi_x, hi_y = float(xs.min()), float(xs.max()), max(_bulk(v, (1.0, 1.0))[1], 0.0) * 1.05 + 1
    box = (78, 80, size - 16, size - 56)
    pw, ph = box[2] - box[0], box[3] - box[1]
    m_px = max((hi_x - lo_x) * 1.08 / pw, hi_y * 1.08 / ph)
    cx, y_lo = (lo_x + hi_x) / 2, -0.04 * hi_y  # below 0: room for the camera's marker
    return _Plot(cx - m_px * pw / 2, cx + m_px * pw / 2, y_lo, y_lo + m_px * ph, box)


def _scale_bar(img: np.ndarray, plot: _Plot, metres: float) -> None:
    """A bar `metres` long, labelled, in the plot's lower left corner (beside the camera: no one there)."""
    x0, y = plot.box[0] + 14, plot.box[3] - 16
    x1 = x0 + round(metres * plot.per_metre()[0])
    cv2.rectangle(img, (x0 - 6, y - 24), (x1 + 6, y + 8), (255, 255, 255), -1)
    cv2.line(img, (x0, y), (x1, y), _INK, 2)
    for x in (x0, x1):
        cv2.line(img, (x, y - 5), (x, y + 5), _INK, 2)
    _put(img, f"{metres:g} m", ((x0 + x1) // 2, y - 13), align="centre")


def birdseye(
    joints: np.ndarray, plane: np.ndarray, focal: float, image_wh: tuple[int, int],
    support: np.ndarray | None = None, size: int = 1024,
) -> np.ndarray:  # fmt: skip
    """Everyone seen from above the fitted ground plane, with the camera and its field of view.

    joints (N, 24, 3) SMPL joints, camera frame m; plane (4,) n . X + d = 0 (n up); focal and image_wh
    in pixels (principal point the centre); support (N,) the persons' support labels (None: not
    judged). A dot per person at the pelvis's foot on the plane, coloured by support; axes in metres
    along the ground (lateral, depth from the camera, one scale), a scale bar and a legend.
    Returns (size, size, 3) uint8 RGB.
    """
    origin, right, fwd, _ = ground_axes(plane)
    p = joints[:, 0] - origin
    u, v = p @ right, p @ fwd
    colours, legend = support_colours(np.full(len(u), None) if support is None else support)
    w, _ = image_wh
    # The image's left and right edges seen from the camera, drawn along the ground.
    edges = [np.array([(x - w / 2) / focal, 0.0, 1.0]) for x in (0, w)]
    far = max(float(np.percentile(v, 99)) * 1.1 if len(v) else 1.0, 1.0)
    rays = [(e @ right / max(e @ fwd, 1e-6) * far, far) for e in edges]
    plot = _birdseye_plot(u, v, rays, size)
    out = np.full((size, size, 3), _PAPER, np.uint8)
    step = _nice_step(max(plot.x_hi - plot.x_lo, plot.y_hi - plot.y_lo))
    _axes(out, plot, (step, step), (
        "x: lateral distance along the ground, right of the camera (m)",
        "z: depth along the ground from the camera (m)",
    ))  # fmt: skip
    box = (plot.box[0] + 1, plot.box[1] + 1, plot.box[2] - plot.box[0] - 2, plot.box[3] - plot.box[1] - 2)
    for r in rays:
        ok, a, b = cv2.clipLine(box, plot.px(0, 0), plot.px(r[0] * 50, r[1] * 50))
        if ok:
            cv2.line(out, a, b, (150, 150, 150), 1, cv2.LINE_AA)
    radius = int(np.clip(round(0.3 * plot.per_metre()[0]), 3, 8))
    outside = 0
    for x, y, c in zip(u, v, colours, strict=True):
        q = plot.px(x, y)
        if not plot.inside(q):
            outside += 1
            continue
        cv2.circle(out, q, radius, tuple(int(k) for k in c), -1, cv2.LINE_AA)
    cam = plot.px(0, 0)
    tri = np.array([cam, (cam[0] - 8, cam[1] + 13), (cam[0] + 8, cam[1] + 13)], np.int32)
    cv2.fillConvexPoly(out, tri, _INK, cv2.LINE_AA)
    _put(out, "camera", (cam[0] + 12, cam[1] + 6))
    _scale_bar(out, plot, step)
    beyond = f"; {outside} beyond the view" if outside else ""
    _header(out, "Bird's-eye view: the people on the fitted ground plane, seen from above",
            f"dot: a person's pelvis dropped onto the plane; grey lines: the image's left and right "
            f"edges{beyond}", legend)  # fmt: skip
    return out


def _side_plot(
    along: np.ndarray, feet: np.ndarray, heads: np.ndarray, camera: float | None, wh: tuple[int, int]
) -> _Plot:
    """The side view's metres: depth from the camera (x) against height above the plane (y) over the
    bulk (_bulk) of the people's depths along (N,), feet and heads (N,) heights, the ground, and the
    camera's height when given."""
    x_lo, x_hi = _bulk(along, (0.0, 1.0))
    y_lo, y_hi = _bulk(feet, (0.0, 0.0))[0], _bulk(heads, (2.0, 2.0))[1]
    x_lo, x_hi = min(x_lo, 0.0), max(x_hi, 1.0)
    y_lo, y_hi = min(y_lo, 0.0, camera or 0.0) - 0.3, max(y_hi, 2.0, camera or 0.0) + 0.3
    pad = 0.03 * (x_hi - x_lo)
    return _Plot(x_lo - pad, x_hi + pad, y_lo, y_hi, (78, 96, wh[0] - 16, wh[1] - 56))


def _side_camera(img: np.ndarray, plot: _Plot, height: float) -> None:
    """The camera at its height above the plane at depth 0, looking right; in the margin above (or
    below) the plot, with an arrow, when its height is outside the view."""
    x, y = plot.px(0, height)
    text = f"camera, {height:.1f} m above the plane"
    if plot.box[1] <= y <= plot.box[3]:
        tri = np.array([(x + 12, y), (x - 2, y - 7), (x - 2, y + 7)], np.int32)
        cv2.fillConvexPoly(img, tri, _INK, cv2.LINE_AA)  # pointing the way it looks
        _put(img, text, (x + 16, y), 0.5)
        return
    edge, sign = (plot.box[1], -1) if y < plot.box[1] else (plot.box[3], 1)
    cv2.arrowedLine(img, (x, edge + sign * 2), (x, edge + sign * 14), _INK, 2, tipLength=0.4)
    _put(img, text + (" (above the view)" if sign < 0 else " (below the view)"), (x + 10, edge + sign * 8))


def side_view(
    joints: np.ndarray, plane: np.ndarray, support: np.ndarray | None = None, width: int = 1024,
    height: int = 512,
) -> np.ndarray:  # fmt: skip
    """Everyone from the side: depth along the ground from the camera (x) against height above the
    fitted plane (y), a line from the feet to the head per person coloured by support (None: not
    judged); the ground as a line; the camera at its height above the plane (in the view when that is
    within 3x the tallest head, else marked at the view's edge, so the people stay readable).
    joints (N, 24, 3) camera frame m; plane (4,) n . X + d = 0 (n up). Returns (height, width, 3) uint8
    RGB."""
    origin, _, fwd, n = ground_axes(plane)
    d = float(plane[3] / np.linalg.norm(plane[:3]))
    along = (joints[:, 0] - origin) @ fwd
    h_feet, h_head = (joints[:, 7] + joints[:, 8]) / 2 @ n + d, joints[:, 15] @ n + d
    tallest = max(_bulk(h_head, (2.0, 2.0))[1], 2.0)
    plot = _side_plot(along, h_feet, h_head, d if abs(d) <= 3 * tallest else None, (width, height))
    out = np.full((height, width, 3), _PAPER, np.uint8)
    steps = (_nice_step(plot.x_hi - plot.x_lo), _nice_step(plot.y_hi - plot.y_lo, 6))
    titles = ("z: depth along the ground from the camera (m)", "y: height above the plane (m)")
    _axes(out, plot, steps, titles)
    cv2.line(out, plot.px(plot.x_lo, 0), plot.px(plot.x_hi, 0), (90, 90, 90), 1)
    _put(out, "ground plane", (plot.box[2] - 6, plot.px(0, 0)[1] + 10), 0.45, align="right")
    colours, legend = support_colours(np.full(len(along), None) if support is None else support)
    left, top, right, bottom = plot.box
    outside = 0
    for x, f, h, c in zip(along, h_feet, h_head, colours, strict=True):
        a, b = plot.px(x, f), plot.px(x, h)
        outside += not (plot.inside(a) and plot.inside(b))
        ok, a, b = cv2.clipLine((left, top, right - left, bottom - top), a, b)
        if ok:
            cv2.line(out, a, b, tuple(int(k) for k in c), 2, cv2.LINE_AA)
    _side_camera(out, plot, d)
    ratio = plot.per_metre()[1] / plot.per_metre()[0]
    scales = f"heights drawn {ratio:.0f}x larger than depths" if ratio >= 1.5 else "one scale on both axes"
    beyond = f"; {outside} reach beyond the view" if outside else ""
    _header(out, "Side view: height above the fitted ground plane by depth from the camera",
            f"line: a person's feet to head; {scales}{beyond}", legend)  # fmt: skip
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
    ids: np.ndarray | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """Meshes, then boxes, skeletons and person ids, over a region of a frame.

    pixels (h, w, 3) uint8 RGB: the frame's full-resolution pixels from (x0, y0) = origin, resized by
    `scale` (picture pixels per full-res pixel); boxes (N, >= 5), keypoints (N, 17, 3) and the
    projection (focal, pp) in full-frame pixels; vertices (N, V, 3) m; ids (N,) person ids.
    """
    x0, y0 = origin
    shifted = boxes.astype(np.float64, copy=True)
    shifted[:, [0, 2]] -= x0
    shifted[:, [1, 3]] -= y0
    kp = keypoints.astype(np.float64, copy=True)
    kp[..., 0] -= x0
    kp[..., 1] -= y0
    out = meshes(pixels, scale, vertices, faces, focal, (pp[0] - x0, pp[1] - y0))
    return overlay(out, scale, shifted, kp, ids=ids)


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
    over its thumbnail, with their person ids."""
    from schemas.tables import fixed_array
    from tasks.export import person_meshes

    verts, faces = person_meshes(rows, body)
    image, scale = thumbnail(levels)
    out = meshes(image, scale, verts, faces, *_camera(rows))
    label_people(out, fixed_array(rows, "bbox", 4) * scale, rows.column("person_id").to_numpy())
    return out


def ground_pictures(rows: pa.Table, plane: np.ndarray, image_wh: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """(bird's-eye view, side view) of a frame's persons rows on its ground plane (4,) n . X + d = 0."""
    from schemas.tables import fixed_array

    joints = fixed_array(rows, "joints3d", 24, 3).astype(np.float64)
    focal = float(rows.column("focal")[0].as_py())
    support = rows.column("support").to_numpy(zero_copy_only=False)
    return birdseye(joints, plane, focal, image_wh, support), side_view(joints, plane, support)


DRAW_MIN_SIDE = 800  # px: `draw` upscales a smaller region until its shorter side reaches this
DRAW_MAX_MEGAPIXELS = 100  # the largest picture `draw` writes


def draw_scale(width: int, height: int) -> int:
    """`draw`'s default upscale of a region width x height px: the smallest whole factor that gives its
    shorter side at least DRAW_MIN_SIDE px (1 when it has), lowered while the picture would exceed
    DRAW_MAX_MEGAPIXELS."""
    k = max(1, math.ceil(DRAW_MIN_SIDE / max(min(width, height), 1)))
    while k > 1 and width * height * k * k > DRAW_MAX_MEGAPIXELS * 1e6:
        k -= 1
    return k


def region_picture(
    level0: Any, rows: pa.Table, box: tuple[int, int, int, int], body: Any, scale: float = 1.0
) -> tuple[np.ndarray, int]:
    """A full-resolution region box = (x0, y0, x1, y1) px of a frame (level0: its pyramid's level 0),
    resized `scale` times (cubic), with the meshes, boxes, skeletons and person ids of its persons rows
    whose boxes reach into it (posed by `body`, tasks/models/body.py BodyModel), drawn at the resized
    size; and how many people that is."""
    from schemas.tables import fixed_array
    from tasks.export import person_meshes

    x0, y0, x1, y1 = box
    boxes = fixed_array(rows, "bbox", 4)
    near = (boxes[:, 2] > x0) & (boxes[:, 0] < x1) & (boxes[:, 3] > y0) & (boxes[:, 1] < y1)
    rows = rows.filter(pa.array(near))
    verts, faces = person_meshes(rows, body)
    scores = rows.column("det_score").to_numpy()[:, None]
    pixels = np.asarray(level0[y0:y1, x0:x1])
    if scale != 1.0:
        size = (max(round((x1 - x0) * scale), 1), max(round((y1 - y0) * scale), 1))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    picture = region(
        pixels, (x0, y0), np.concatenate([boxes[near], scores], 1), fixed_array(rows, "kp2d", 17, 3),
        verts, faces, *_camera(rows), ids=rows.column("person_id").to_numpy(), scale=scale,
    )  # fmt: skip
    return picture, len(rows)


def write_png(path: Path, picture: np.ndarray) -> None:
    """picture (H, W, 3) uint8 RGB as a PNG at path, atomically."""
    import pyvips

    from schemas.io import atomic_output

    with atomic_output(path) as tmp:
        pyvips.Image.new_from_array(picture, interpretation="srgb").pngsave(str(tmp), compression=3)
