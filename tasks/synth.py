"""Synthetic crowd frames with exact 3D truth: layout, body geometry, tile-by-tile rendering, truth JSON.

Geometry (camera frame: x right, y down, z forward, metres; pixels for the image):
- the camera is at the origin, `camera_height` metres above a ground plane seen obliquely; the plane is
  `u . X + h = 0` with `u` the unit up direction (y-negative) and `h` the height, GigaCrowd-like
  (reference/gigacrowd.md: focal 1.1-1.5x the image diagonal, 10-20 m up, normal ~(0, -0.97, -0.2));
- people are SMPL bodies (the project's neutral model or a user's SMPL file) with real poses from
  tasks/data/poses_smpl24.npz, betas ~ N(0, 1), standing in small groups on the plane with the lowest
  vertex on it and at least `min_gap` metres between people's centres;
- truth per person is the SMPL (pose, shape, transl) in the predict.json convention (vertices =
  SMPL(pose, shape) + transl, camera frame), box, COCO-17 keypoints, torso centre, its projection onto
  the ground (hvip) and the visible fraction of the body.

Pixel convention (as K's principal point at (W/2, H/2) implies): pixel (i, j) covers [j, j+1) x [i, i+1)
with its centre at (j + 0.5, i + 0.5); OpenCV fills pixels by their centres at integer coordinates, so
polygons are shifted by half a pixel before filling.

Rendering is flat-shaded painter's algorithm (people far to near, each person's front faces far to near)
with OpenCV polygon fills, one tile at a time, so memory depends on the tile size and the number of
people, not on the image size; tiles stream into a temporary raw RGB file that libvips re-encodes as JPEG.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from schemas.io import TMP_PREFIX, atomic_output
from schemas.layout import TRUTH_FILE
from schemas.scene import SyntheticConfig
from schemas.truth import BodyModelInfo, ImageShape, PersonTruth, SmplParams, Truth, write_truth
from tasks.evaluate import TORSO_JOINTS
from tasks.models.body import BodyModel
from tasks.poses import PoseBank, aa_to_matrix, matrix_to_aa
from tasks.scenery import (
    ACTIVITIES,
    ANKLE_HEIGHT_RIDING_M,
    JUMP_HEIGHT_M,
    PRESETS,
    SUPPORT_OF,
    Preset,
    Prop,
    Terrace,
    activities,
    bench,
    bicycle,
    child_shapes,
    draw_terrace,
    posed,
)

# Skin-weight parts (SMPL joints) -> material: 0 skin, 1 top, 2 trousers, 3 shoes, 4 hair.
_PART_MATERIAL = {
    0: 2, 1: 2, 2: 2, 3: 1, 4: 2, 5: 2, 6: 1, 7: 3, 8: 3, 9: 1, 10: 3, 11: 3, 12: 0, 13: 1, 14: 1,
    15: 0, 16: 1, 17: 1, 18: 1, 19: 1, 20: 0, 21: 0, 22: 0, 23: 0,
}  # fmt: skip
_SKIN = np.array([[224, 172, 135], [198, 134, 96], [141, 85, 54], [255, 219, 180], [110, 68, 45]], float)
_HAIR = np.array([[30, 22, 18], [70, 45, 25], [120, 90, 50], [180, 160, 120], [15, 15, 15]], float)


# Bumped whenever the same settings would give other pixels or truth, so cached frames are remade.
RENDER_VERSION = 3


@dataclass(frozen=True)
class Camera:
    f: float
    width: int
    height: int

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.f, 0, self.width / 2], [0, self.f, self.height / 2], [0, 0, 1.0]])

    def project(self, x: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame metres (z > 0) -> (..., 2) pixels."""
        return self.f * x[..., :2] / x[..., 2:3] + np.array([self.width / 2, self.height / 2])


@dataclass(frozen=True)
class Scene:
    """A laid-out frame. pose (N, 72) axis-angle with the global orient in the camera frame, shape
    (N, 10), transl (N, 3) m; up (3,) unit gravity up in the camera frame (people stand along it);
    height m of the camera above the ground straight below it; group (N,) ids; normal (3,) the ground's
    unit normal (= up on level ground, tilted from it by the slope); support (N,) what each person rests
    on (tasks/scenery.SUPPORTS); surface (N,) m the height of the surface under each person above the
    ground (a raised level's height, else 0); terrace the raised level, if any; props the benches and
    bicycles drawn with their people."""

    camera: Camera
    up: np.ndarray
    height: float
    pose: np.ndarray
    shape: np.ndarray
    transl: np.ndarray
    group: np.ndarray
    normal: np.ndarray
    support: np.ndarray = field(default_factory=lambda: np.zeros(0, "<U8"))
    surface: np.ndarray = field(default_factory=lambda: np.zeros(0))
    terrace: Terrace | None = None
    props: tuple[Prop, ...] = ()

    @property
    def levels(self) -> list[float]:
        """Heights (m) of the raised levels above the ground: support level_k is levels[k - 2] (the ground
        is the first level)."""
        return [self.terrace.height] if self.terrace is not None else []

    @property
    def plane(self) -> np.ndarray:
        """(4,) A, B, C, D with (A, B, C) = the unit normal and A x + B y + C z + D = 0 on the ground;
        the ground passes through the point `height` metres below the camera along gravity."""
        return np.array([*self.normal, self.height * float(self.normal @ self.up)])

    def above_ground(self, x: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points -> (...,) signed distance above the ground along gravity, m."""
        p = self.plane
        return (x @ p[:3] + p[3]) / float(p[:3] @ self.up)


def _ground_axes(pitch: float, roll: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit up, forward (along the ground, away from the camera) and right vectors in the camera frame."""
    up = np.array([0.0, -math.cos(pitch), -math.sin(pitch)])
    fwd = np.array([0.0, -math.sin(pitch), math.cos(pitch)])
    right = np.array([1.0, 0.0, 0.0])
    c, s = math.cos(roll), math.sin(roll)
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])  # roll about the optical axis
    return rz @ up, rz @ fwd, rz @ right


def layout(cfg: SyntheticConfig, bank: PoseBank, body: BodyModel) -> Scene:
    """Place cfg.people people in groups on the visible ground, doing what cfg.preset's mix says;
    deterministic given cfg.seed."""
    rng = np.random.default_rng(cfg.seed)
    preset = PRESETS[cfg.preset]
    if preset.slope_deg > cfg.max_slope_deg:
        cfg = cfg.model_copy(update={"max_slope_deg": preset.slope_deg})
    view = _view(cfg, rng)
    if cfg.preset == "plaza":  # the first-generation world, draw for draw
        pos, heading, group = _place(cfg, rng, view)
        return _stand(view, pos, heading, group, bank, body, rng)
    extra = np.random.default_rng([cfg.seed, 2])  # the second generation's own stream
    near, far = view.depth_range()
    half_w_per_m = cfg.width / 2 / view.level.camera.f
    view = replace(view, terrace=draw_terrace(extra, preset, near, far, half_w_per_m, view.fwd, view.right))
    pos, heading, group = _place(cfg, rng, view)
    return _populate(view, pos, heading, group, preset, (bank, body), rng, extra)


@dataclass(frozen=True)
class _View:
    """A frame's camera over its ground: `level` (a Scene without people: camera, up, height, normal),
    pitch and the half vertical field of view (rad), the forward and right directions on the ground."""

    level: Scene
    pitch: float
    half_v: float
    fwd: np.ndarray
    right: np.ndarray
    terrace: Terrace | None = None

    def on_ground(self, q: np.ndarray) -> np.ndarray:
        """(..., 3) level-ground points moved along gravity onto the (sloped) ground."""
        return q - self.level.above_ground(q)[..., None] * self.level.up

    def surface(self, d: np.ndarray | float, x: np.ndarray | float) -> np.ndarray:
        """Height (m) above the ground of the surface d m forward and x m right: the terrace's or 0."""
        t = self.terrace
        return np.where(t.contains(d, x), t.height, 0.0) if t is not None else np.zeros(np.shape(d))

    def ground_point(self, d: float, x: float) -> np.ndarray:
        """The point people stand on d m forward and x m right of the point below the camera: on the
        ground, or on the terrace there."""
        up, h = self.level.up, self.level.height
        return self.on_ground(-h * up + d * self.fwd + x * self.right) + self.surface(d, x) * up

    def depth_range(self) -> tuple[float, float]:
        """Nearest and farthest forward distances (m) at which people's feet are placed."""
        h = self.level.height
        return h / math.tan(self.pitch + self.half_v) * 1.05, h / math.tan(self.pitch - self.half_v) * 0.97


def _view(cfg: SyntheticConfig, rng: np.random.Generator) -> _View:
    """The camera (focal, height, pitch, roll) and the ground (slope) of a frame, drawn from rng."""
    diag = math.hypot(cfg.width, cfg.height)
    f = diag * (cfg.focal_factor if cfg.focal_factor is not None else rng.uniform(1.1, 1.5))
    h = cfg.camera_height if cfg.camera_height is not None else rng.uniform(10.0, 20.0)
    half_v = math.atan(cfg.height / 2 / f)
    # The top edge looks 2-5 degrees below the horizon: the crowd fills the frame, far people are small.
    pitch = half_v + math.radians(rng.uniform(2.0, 5.0))
    roll = math.radians(rng.uniform(-cfg.max_roll_deg, cfg.max_roll_deg))
    up, fwd, right = _ground_axes(pitch, roll)
    slope = math.radians(rng.uniform(0.0, cfg.max_slope_deg)) if cfg.max_slope_deg > 0 else 0.0
    downhill = rng.uniform(-math.pi, math.pi)  # azimuth of the steepest descent on the ground
    axis = -math.sin(downhill) * fwd + math.cos(downhill) * right
    normal = math.cos(slope) * up + math.sin(slope) * np.cross(axis, up)
    # The ground is h below the camera along gravity; a level-ground point moves along gravity onto it.
    level = Scene(Camera(f, cfg.width, cfg.height), up, h, np.zeros((0, 72)), np.zeros((0, 10)),
                  np.zeros((0, 3)), np.zeros(0, int), normal)  # fmt: skip
    return _View(level, pitch, half_v, fwd, right)


def _place(
    cfg: SyntheticConfig, rng: np.random.Generator, view: _View
) -> tuple[list[tuple[float, float]], list[float], list[int]]:
    """Ground positions (forward distance D, lateral x; m), headings (rad) and group ids of cfg.people
    people: groups of 1-5, area-uniform in the frustum, at least cfg.min_gap apart, feet in view."""
    f, cam = view.level.camera.f, view.level.camera
    near, far = view.depth_range()
    pos: list[tuple[float, float]] = []
    heading: list[float] = []
    group: list[int] = []
    cell = cfg.min_gap
    grid: dict[tuple[int, int], list[int]] = {}
    g = 0
    tries = 0
    while len(pos) < cfg.people and tries < cfg.people * 200:
        size = int(rng.choice([1, 2, 3, 4, 5], p=[0.35, 0.3, 0.2, 0.1, 0.05]))
        d = math.sqrt(rng.uniform(near**2, far**2))
        half_w = d * (cfg.width / 2) / f
        x = rng.uniform(-half_w, half_w)
        walking = rng.uniform() < 0.5
        common = rng.uniform(-math.pi, math.pi)
        for _ in range(size):
            tries += 1
            if len(pos) >= cfg.people:
                break
            r = 0.0 if size == 1 else rng.uniform(0.5, 1.2)
            a = rng.uniform(-math.pi, math.pi)
            pd, px = d + r * math.cos(a), x + r * math.sin(a)
            key = (int(pd // cell), int(px // cell))
            close = [
                j
                for dk in (-1, 0, 1)
                for dl in (-1, 0, 1)
                for j in grid.get((key[0] + dk, key[1] + dl), [])
                if math.hypot(pos[j][0] - pd, pos[j][1] - px) < cfg.min_gap
            ]
            foot = cam.project(view.ground_point(pd, px))
            seen = 0 <= foot[0] < cfg.width and 0.03 * cfg.height <= foot[1] < cfg.height
            if close or not seen:
                continue
            grid.setdefault(key, []).append(len(pos))
            pos.append((pd, px))
            # Walkers share a direction; standing groups face their centre.
            heading.append(common if walking or size == 1 else math.atan2(-math.sin(a), -math.cos(a)))
            group.append(g)
        g += 1
    if len(pos) < cfg.people:
        raise ValueError(f"could place only {len(pos)} of {cfg.people} people {cfg.min_gap} m apart in view")
    return pos, heading, group


def _stand(
    view: _View, pos: list[tuple[float, float]], heading: list[float], group: list[int], bank: PoseBank,
    body: BodyModel, rng: np.random.Generator,
) -> Scene:  # fmt: skip
    """The people at their ground positions: crowd poses and shapes drawn from rng, each facing its
    heading, the lowest vertex on the ground."""
    level, up, fwd, right = view.level, view.level.up, view.fwd, view.right
    n = len(pos)
    crowd = np.flatnonzero(bank.crowd)
    poses = bank.poses[rng.choice(crowd, n)].reshape(n, 72).astype(np.float64)
    shape = np.clip(rng.normal(0.0, 1.0, (n, 10)), -2.5, 2.5)
    _face(poses, _facing(view, heading), up)
    h = level.height
    ground = view.on_ground(np.array([-h * up + pd * fwd + px * right for pd, px in pos]))
    verts, joints, _ = body.numpy_forward(poses, shape)
    # Pelvis above its ground point; the lowest vertex (against the ground) on the plane.
    t0 = ground - joints[:, 0]
    height_above = level.above_ground(verts + t0[:, None]).min(1)  # metres, along gravity
    transl = t0 - height_above[:, None] * up
    return Scene(
        level.camera, up, level.height, poses.astype(np.float32), shape.astype(np.float32), transl,
        np.asarray(group), level.normal, np.full(n, "floor", "<U8"), np.zeros(n),
    )  # fmt: skip


def _facing(view: _View, heading: list[float] | np.ndarray) -> np.ndarray:
    """(N,) headings rad (0: away from the camera, pi/2: to the right) -> (N, 3) unit directions."""
    hd = np.asarray(heading, dtype=np.float64)
    return np.cos(hd)[:, None] * view.fwd + np.sin(hd)[:, None] * view.right


def _face(poses: np.ndarray, facing: np.ndarray, up: np.ndarray) -> None:
    """Turn poses (N, 72) in place from the body frame (x left, y up, z facing) into the camera frame,
    each facing along facing (N, 3) with its up along up (3,)."""
    left = np.cross(up, facing)
    basis = np.stack([left, np.broadcast_to(up, facing.shape), facing], axis=-1)  # (N, 3, 3) columns
    poses[:, :3] = matrix_to_aa(basis @ aa_to_matrix(poses[:, :3]))


_RIDER_ROOM_M = 1.2  # a rider with anyone closer walks instead: a bicycle is 1.8 m long


def _populate(
    view: _View, pos: list[tuple[float, float]], heading: list[float], group: list[int], preset: Preset,
    models: tuple[PoseBank, BodyModel], rng: np.random.Generator, extra: np.random.Generator,
) -> Scene:  # fmt: skip
    """The second-generation people at their positions: activities drawn from the preset's mix (from
    `extra`), poses and shapes to match, each resting on its surface as its activity says (feet on it,
    seated with the feet on it, a jumper 0.2-0.6 m above it, a rider's ankles at pedal height), and the
    benches and bicycles under them."""
    bank, body = models
    level, up = view.level, view.level.up
    n = len(pos)
    d, x = np.array(pos).T
    kinds = activities(extra, preset, np.asarray(group))
    for i in np.flatnonzero(kinds == "ride"):
        if (np.hypot(d - d[i], x - x[i]) < _RIDER_ROOM_M).sum() > 1:
            kinds[i] = "stand"
    poses = bank.poses[rng.choice(np.flatnonzero(bank.crowd), n)].astype(np.float64)
    shape = np.clip(rng.normal(0.0, 1.0, (n, 10)), -2.5, 2.5)
    for kind in ACTIVITIES:
        sel = kinds == kind
        poses[sel] = posed(kind, poses[sel], extra)
    shape[kinds == "child"] = child_shapes(extra, int((kinds == "child").sum()), body)
    poses = poses.reshape(n, 72)
    facing = _facing(view, heading)
    _face(poses, facing, up)

    surface = view.surface(d, x)
    ground = np.array([view.ground_point(pd, px) for pd, px in pos])  # on each person's surface
    verts, joints, _ = body.numpy_forward(poses, shape)
    t0 = ground - joints[:, 0]
    lowest = level.above_ground(verts + t0[:, None]).min(1) - surface  # above the own surface, m
    lift = np.zeros(n)
    jump = kinds == "jump"
    lift[jump] = extra.uniform(*JUMP_HEIGHT_M, int(jump.sum()))
    ride = kinds == "ride"
    ankles = level.above_ground(joints[:, 7:9].mean(1) + t0) - surface - lowest
    lift[ride] = np.maximum(ANKLE_HEIGHT_RIDING_M - ankles[ride], 0.02)
    transl = t0 + (lift - lowest)[:, None] * up
    support = np.array([SUPPORT_OF[k] for k in kinds], dtype="<U8")
    support[(support == "floor") & (surface > 0)] = "level_2"
    props = _props(kinds, verts + transl[:, None], joints + transl[:, None], facing, up, body, extra,
                   ground)  # fmt: skip
    return Scene(
        level.camera, up, level.height, poses.astype(np.float32), shape.astype(np.float32), transl,
        np.asarray(group), level.normal, support, surface, view.terrace, props,
    )  # fmt: skip


def _props(
    kinds: np.ndarray, verts: np.ndarray, joints: np.ndarray, facing: np.ndarray, up: np.ndarray,
    body: BodyModel, rng: np.random.Generator, surface_pts: np.ndarray,
) -> tuple[Prop, ...]:  # fmt: skip
    """Benches under people seated on a bench and bicycles under riders. verts (N, V, 3), joints
    (N, 24, 3) posed in the camera frame, facing (N, 3), surface_pts (N, 3) the point of each person's
    surface below the placement point."""
    seat_part = np.isin(vertex_parts(body), [0, 1, 2])  # pelvis, thighs
    props: list[Prop] = []
    for i in np.flatnonzero(np.isin(kinds, ["bench", "ride"])):
        level_of = float(surface_pts[i] @ up)  # the surface's height along up (camera frame)
        below_pelvis = joints[i, 0] - (joints[i, 0] @ up - level_of) * up
        if kinds[i] == "bench":
            top = float((verts[i, seat_part] @ up).min() - level_of) - 0.005
            wood = np.array([120.0, 85.0, 50.0]) * rng.uniform(0.7, 1.2)
            props.append(bench(int(i), below_pelvis, facing[i], up, top, np.clip(wood, 0, 255)))
        else:
            mid = joints[i, 7:9].mean(0)
            axle = mid - (mid @ up - level_of) * up
            paint = rng.uniform(20, 220, 3)
            saddle, bar = joints[i, 0] - 0.1 * up, joints[i, 20:22].mean(0)
            props.append(bicycle(int(i), axle, facing[i], up, saddle, bar, paint))
    return tuple(props)


@dataclass(frozen=True)
class KeypointFrame:
    """A laid-out frame as the crowd step sees it, without rendering (N people): boxes (N, 4) px, the
    meshes' extents; kp (N, 17, 3) COCO-17 keypoints px + confidence (1, or 0 where dropped) with
    detector-like noise; and the truth the evaluator takes: gt_kp2d (N, 17, 2) noiseless px, gt_torso
    (N, 3) m (mean of the SMPL joints TORSO_JOINTS), gt_plane (4,) the ground, camera; and per person
    support (N,) (Scene.support) and stature (N,) m."""

    camera: Camera
    boxes: np.ndarray
    kp: np.ndarray
    gt_kp2d: np.ndarray
    gt_torso: np.ndarray
    gt_plane: np.ndarray
    support: np.ndarray
    stature: np.ndarray


def mesh_boxes(uv: np.ndarray) -> np.ndarray:
    """(N, V, 2) projected mesh vertices px -> (N, 4) x0, y0, x1, y1 px: each person's ground-truth box,
    the extent of its whole mesh (occluded parts included)."""
    return np.concatenate([uv.min(1), uv.max(1)], axis=1)


def keypoint_frame(
    cfg: SyntheticConfig, bank: PoseBank, body: BodyModel, jitter: float = 0.02, dropped: float = 0.05
) -> KeypointFrame:
    """layout(cfg) with ground-truth boxes and keypoints jittered by Gaussian noise of `jitter` x the
    box height, a `dropped` fraction of joints set to 0 (a detector's missing joints); deterministic
    given cfg.seed."""
    scene = layout(cfg, bank, body)
    verts, joints, coco = body.numpy_forward(scene.pose, scene.shape, scene.transl)
    cam = scene.camera
    uv = cam.project(verts.astype(np.float64))
    boxes = mesh_boxes(uv)
    rng = np.random.default_rng(cfg.seed)
    kp2d = cam.project(coco)
    kp = np.concatenate([kp2d, np.ones((cfg.people, 17, 1))], -1)
    kp[..., :2] += rng.normal(0, jitter, (cfg.people, 17, 2)) * (boxes[:, 3:4] - boxes[:, 1:2])[:, :, None]
    kp[rng.uniform(size=(cfg.people, 17)) < dropped] = 0.0
    return KeypointFrame(
        cam, boxes, kp, kp2d, joints[:, TORSO_JOINTS].mean(1), scene.plane, scene.support,
        body.statures(scene.shape),
    )  # fmt: skip


@dataclass(frozen=True)
class Rendered:
    """Per person: visibility (N,) fraction of the silhouette inside the image and unoccluded;
    keypoint_occluded (N, 17) bool: a nearer person is drawn over the keypoint's pixel."""

    visibility: np.ndarray
    keypoint_occluded: np.ndarray


def vertex_parts(body: BodyModel) -> np.ndarray:
    """(V,) the SMPL joint whose skinning weight dominates each vertex (its body part)."""
    return np.asarray(body.smpl.lbs_weights.numpy()).argmax(1)


def face_materials(body: BodyModel) -> np.ndarray:
    """(F,) material of each face: 0 skin, 1 top, 2 trousers, 3 shoes, 4 hair."""
    part = vertex_parts(body)
    mat = np.array([_PART_MATERIAL[int(p)] for p in part])
    rest = body.smpl.v_template.numpy()
    face_mat = mat[body.faces].max(1)  # clothing wins at seams
    centre = rest[body.faces].mean(1)  # (F, 3) rest pose: y up, facing +z
    head = part[body.faces].max(1) == 15
    top = rest[:, 1].max()
    head_z = rest[part == 15, 2].mean()
    # Hair: the crown, and the back of the head down to the ears.
    hair = head & (
        (centre[:, 1] > top - 0.08) | ((centre[:, 2] < head_z - 0.01) & (centre[:, 1] > top - 0.17))
    )
    face_mat[hair] = 4
    return face_mat


def person_palette(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 5, 3) RGB per person and material."""
    pal = np.zeros((n, 5, 3))
    pal[:, 0] = _SKIN[rng.integers(0, len(_SKIN), n)] * rng.uniform(0.9, 1.1, (n, 1))
    pal[:, 1] = rng.uniform(20, 235, (n, 3))
    dark = rng.uniform(0, 1, n) < 0.6  # trousers are mostly dark or denim
    pal[:, 2] = np.where(
        dark[:, None], rng.uniform(15, 90, (n, 3)), [[60, 80, 130]] * rng.uniform(0.7, 1.3, (n, 1))
    )
    pal[:, 3] = rng.uniform(10, 70, (n, 1)) * np.ones(3)
    pal[:, 4] = _HAIR[rng.integers(0, len(_HAIR), n)]
    return np.clip(pal, 0, 255)


_LIGHT = np.array([0.3, -0.8, -0.5]) / np.linalg.norm([0.3, -0.8, -0.5])  # camera frame, from above


def draw_person(
    img: np.ndarray,
    uv: np.ndarray,
    verts: np.ndarray,
    faces: np.ndarray,
    face_rgb: np.ndarray,
    ids: np.ndarray | None = None,
    ident: int = 0,
) -> None:
    """Paint one person into img (h, w, 3) uint8, in place: uv (V, 2) the vertices' image coordinates
    (pixel (i, j) covers [j, j+1) x [i, i+1)), verts (V, 3) camera frame m, faces (F, 3), face_rgb
    (F, 3) base colour per face. Front faces far to near, flat-shaded by a light from above; `ids`
    (h, w) int32, if given, gets `ident` where the person is drawn."""
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    front = np.einsum("fc,fc->f", normal, tri.mean(1)) < 0
    if not front.any():
        return
    fi = np.flatnonzero(front)
    fi = fi[np.argsort(-tri[fi, :, 2].mean(1), kind="stable")]
    nrm = normal[fi] / np.maximum(np.linalg.norm(normal[fi], axis=1, keepdims=True), 1e-12)
    shade = 0.45 + 0.55 * np.clip(nrm @ -_LIGHT, 0, 1)
    colour = face_rgb[fi] * shade[:, None]
    pts = np.round((uv[faces[fi]] - 0.5) * 16).astype(np.int32)
    for p, c in zip(pts, colour, strict=True):
        cv2.fillConvexPoly(img, p, c.tolist(), lineType=cv2.LINE_8, shift=4)
        if ids is not None:
            cv2.fillConvexPoly(ids, p, ident, lineType=cv2.LINE_8, shift=4)


def _terrace_hits(rays: np.ndarray, t: np.ndarray, hit: np.ndarray, scene: Scene) -> np.ndarray:
    """Where rays (h, w, 3) meet the scene's terrace before the ground (distances t (h, w), hit (h, w)
    where the ground is met), update t and hit in place; returns (h, w) int: 0 ground or sky, 1 the
    terrace's top, 2 its front face, 3 its side face."""
    ter = scene.terrace
    which = np.zeros(t.shape, np.int64)
    if ter is None:
        return which
    n, up = scene.plane[:3], scene.up
    down = -(rays @ n)
    top_d = scene.plane[3] - ter.height * float(n @ up)  # the top's plane: n . X + top_d = 0
    along, across = rays @ ter.fwd, rays @ ter.right
    with np.errstate(divide="ignore", invalid="ignore"):
        cands = (
            np.where(down > 1e-9, top_d / down, np.inf),
            np.where(along > 1e-9, ter.start / along, np.inf),
            np.where(ter.side * across > 1e-9, ter.side * ter.edge / across, np.inf),
        )
    for k, tk in enumerate(cands, start=1):
        tk = np.where(np.isfinite(tk) & (tk > 0), tk, np.inf)
        pts = rays * np.where(np.isfinite(tk), tk, 0.0)[..., None]
        d, x = pts @ ter.fwd, pts @ ter.right
        height = scene.above_ground(pts)
        if k == 1:
            ok = ter.contains(d, x)
        elif k == 2:
            ok = (ter.side * x > ter.edge) & (height > 0) & (height < ter.height)
        else:
            ok = (d > ter.start) & (height > 0) & (height < ter.height)
        ok &= np.isfinite(tk) & (~hit | (tk < t))
        t[ok], hit[ok], which[ok] = tk[ok], True, k
    return which


def _background(cam: Camera, scene: Scene, y0: int, x0: int, th: int, tw: int, seed: int) -> np.ndarray:
    """(th, tw, 3) uint8 RGB: paved ground (and terrace) where rays hit the scene's ground plane (or its
    terrace), else sky."""
    plane = scene.plane
    up = plane[:3]
    ys, xs = np.mgrid[y0 : y0 + th, x0 : x0 + tw].astype(np.float64) + 0.5  # pixel centres
    rays = np.stack([(xs - cam.width / 2) / cam.f, (ys - cam.height / 2) / cam.f, np.ones_like(xs)], -1)
    down = -(rays @ up)
    hit = down > 1e-6
    t = np.where(hit, plane[3] / np.maximum(down, 1e-6), 0.0)
    which = _terrace_hits(rays, t, hit, scene)
    pts = rays * t[..., None]
    # Ground coordinates on the plane: two axes orthogonal to up.
    a1 = np.cross(up, [0.0, 0.0, 1.0])
    a1 /= np.linalg.norm(a1)
    a2 = np.cross(up, a1)
    u, v = pts @ a1, pts @ a2
    slab = (
        np.floor(u / 0.6).astype(np.int64) * 7919 + np.floor(v / 0.6).astype(np.int64) * 104729 + seed
    ) % 97
    base = 115 + (slab / 97.0) * 40
    joint = (np.abs(u / 0.6 - np.round(u / 0.6)) < 0.03) | (np.abs(v / 0.6 - np.round(v / 0.6)) < 0.03)
    grey = np.where(joint, base * 0.7, base)
    if which.any():  # the terrace: lighter concrete on top, its walls striped as steps
        step = (np.floor(scene.above_ground(pts) / 0.3) % 2) * 12
        grey = np.select([which == 1, which > 1], [grey * 1.15 + 10, 85 + step - 10 * (which == 3)], grey)
    img = np.empty((th, tw, 3))
    img[..., 0], img[..., 1], img[..., 2] = grey * 1.02, grey, grey * 0.95
    sky = np.array([185.0, 205.0, 230.0])
    img[~hit] = sky
    return img.clip(0, 255).astype(np.uint8)


FORMATS = ("jpeg", "tiff")
_TIFF_TILE = 512


def _encode(tiles_tiff: Path, out: Path, fmt: str, quality: int) -> None:
    """Re-encode the renderer's uncompressed tiled TIFF as the output format, streaming through libvips.

    jpeg: baseline 4:4:4 JPEG. tiff: tiled (512 px), JPEG-compressed, pyramidal TIFF, which the ingest
    stage reads region by region without decoding the whole frame.
    """
    import pyvips

    img = pyvips.Image.new_from_file(str(tiles_tiff), access="sequential")
    with atomic_output(out) as tmp:
        if fmt == "jpeg":
            img.jpegsave(str(tmp), Q=quality, subsample_mode="off")
        else:
            img.tiffsave(
                str(tmp), tile=True, tile_width=_TIFF_TILE, tile_height=_TIFF_TILE, pyramid=True,
                compression="jpeg", Q=quality,
            )  # fmt: skip


class _Painter:
    """A frame's pixels, tile by tile (flat-shaded painter's algorithm, far to near), counting each
    person's visible pixels (`shown`) and who is drawn at each COCO keypoint's pixel (`owner`, -1: the
    ground). verts (N, V, 3) posed vertices, camera frame m; keypoints (N, 17, 2) px."""

    MARGIN = 8  # px drawn around a tile so that blur sees its neighbours' pixels

    def __init__(
        self, scene: Scene, body: BodyModel, verts: np.ndarray, keypoints: np.ndarray, cfg: SyntheticConfig
    ) -> None:
        self.scene, self.cfg, self.verts, self.faces = scene, cfg, verts, body.faces
        n = len(scene.pose)
        self.palette = person_palette(np.random.default_rng(cfg.seed + 1), n)
        self.material = face_materials(body)
        self.uv = scene.camera.project(verts)  # (N, V, 2)
        self.order = np.argsort(-verts[..., 2].mean(1), kind="stable")  # far to near
        self.boxes = mesh_boxes(self.uv)
        # Props are drawn just before their person, so a person's reach covers its props too.
        self.props: dict[int, list[tuple[Prop, np.ndarray]]] = {}
        self.reach = self.boxes.copy()
        for prop in scene.props:
            uv = scene.camera.project(prop.verts)
            self.props.setdefault(prop.owner, []).append((prop, uv))
            r = self.reach[prop.owner]
            r[:2], r[2:] = np.minimum(r[:2], uv.min(0)), np.maximum(r[2:], uv.max(0))
        self.shown = np.zeros(n)
        self.owner = np.full(keypoints.shape[:2], -1, np.int64)
        self.kp_px = np.floor(keypoints).astype(np.int64)

    def draw(self, y0: int, x0: int, th: int, tw: int) -> np.ndarray:
        """(th, tw, 3) uint8 pixels at (y0, x0); counts each person's visible pixels into `shown`."""
        cfg, m, boxes, n = self.cfg, self.MARGIN, self.reach, len(self.shown)
        ty0, tx0 = y0 - m, x0 - m
        th_m, tw_m = th + 2 * m, tw + 2 * m
        img = _background(self.scene.camera, self.scene, ty0, tx0, th_m, tw_m, cfg.seed)
        ids = np.full((th_m, tw_m), -1, np.int32)
        hit = (
            (boxes[:, 2] >= tx0)
            & (boxes[:, 0] < tx0 + tw_m)
            & (boxes[:, 3] >= ty0)
            & (boxes[:, 1] < ty0 + th_m)
        )
        for i in self.order[hit[self.order]]:
            for prop, uv in self.props.get(int(i), ()):
                rgb = np.broadcast_to(prop.rgb, (len(prop.faces), 3))
                draw_person(img, uv - [tx0, ty0], prop.verts, prop.faces, rgb)
            colours = self.palette[i, self.material]
            draw_person(img, self.uv[i] - [tx0, ty0], self.verts[i], self.faces, colours, ids, int(i))
        core = ids[m:-m, m:-m]
        self.shown[:] += np.bincount(core[core >= 0], minlength=n)[:n]
        kp = self.kp_px
        here = (kp[..., 0] >= x0) & (kp[..., 0] < x0 + tw) & (kp[..., 1] >= y0) & (kp[..., 1] < y0 + th)
        self.owner[here] = core[kp[here][:, 1] - y0, kp[here][:, 0] - x0]
        if cfg.blur_sigma > 0:
            img = cv2.GaussianBlur(img, (0, 0), cfg.blur_sigma)
        img = img[m:-m, m:-m]
        if cfg.noise_sigma > 0:
            nrng = np.random.default_rng([cfg.seed, y0, x0])
            img = np.clip(img + nrng.normal(0, cfg.noise_sigma, img.shape), 0, 255).astype(np.uint8)
        return img

    def tiff_tiles(self) -> Iterator[np.ndarray]:
        """The frame as 512 x 512 tiles in TIFF order, rendered one strip of cfg.tile rows at a time."""
        cam, tile = self.scene.camera, self.cfg.tile
        for y0 in range(0, cam.height, tile):
            th = min(tile, cam.height - y0)
            strip = np.zeros(
                (-(-th // _TIFF_TILE) * _TIFF_TILE, -(-cam.width // _TIFF_TILE) * _TIFF_TILE, 3), np.uint8
            )
            for x0 in range(0, cam.width, tile):
                tw = min(tile, cam.width - x0)
                strip[:th, x0 : x0 + tw] = self.draw(y0, x0, th, tw)
            for ty in range(0, th, _TIFF_TILE):
                for tx in range(0, cam.width, _TIFF_TILE):
                    yield strip[ty : ty + _TIFF_TILE, tx : tx + _TIFF_TILE]


def _silhouette_areas(uv: np.ndarray, faces: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) each person's whole silhouette in px, drawn alone (pixels outside the image count as not
    visible); uv (N, V, 2) px, boxes (N, 4) px."""
    area = np.zeros(len(uv))
    for i in range(len(uv)):
        x1, y1 = np.floor(boxes[i, :2]).astype(int) - 1
        x2, y2 = np.ceil(boxes[i, 2:]).astype(int) + 1
        mask = np.zeros((y2 - y1, x2 - x1), np.uint8)
        pts = np.round((uv[i][faces] - [x1 + 0.5, y1 + 0.5]) * 16).astype(np.int32)
        cv2.fillPoly(mask, list(pts), 1, lineType=cv2.LINE_8, shift=4)
        area[i] = mask.sum()
    return area


def render(
    scene: Scene,
    body: BodyModel,
    verts: np.ndarray,
    keypoints: np.ndarray,
    cfg: SyntheticConfig,
    out: Path,
    fmt: str = "jpeg",
) -> Rendered:
    """Render the scene (its posed vertices verts (N, V, 3), camera frame, metres) into the image file
    `out` (fmt "jpeg" or "tiff"), tile by tile; returns per-person visibility, and which of the COCO
    keypoints (N, 17, 2) pixels another person hides.

    Pixels stream strip by strip (cfg.tile rows) into an uncompressed tiled TIFF that libvips then
    re-encodes, so memory holds one strip, not the frame (a raw file that libvips maps would count the
    whole frame in the process's resident memory).
    """
    import tifffile

    if fmt not in FORMATS:
        raise ValueError(f"image format must be one of {FORMATS}, got {fmt!r}")
    if cfg.tile % _TIFF_TILE:
        raise ValueError(f"tile must be a multiple of {_TIFF_TILE}, got {cfg.tile}")
    cam = scene.camera
    painter = _Painter(scene, body, verts, keypoints, cfg)
    raw = out.with_name(f"{TMP_PREFIX}{out.name}.tiles.tif")  # scratch; a killed run's is swept
    try:
        tifffile.imwrite(
            raw, data=painter.tiff_tiles(), shape=(cam.height, cam.width, 3), dtype=np.uint8,
            tile=(_TIFF_TILE, _TIFF_TILE), photometric="rgb", compression=None, bigtiff=True,
        )  # fmt: skip
        _encode(raw, out, fmt, cfg.jpeg_quality)
    finally:
        raw.unlink(missing_ok=True)
    area = _silhouette_areas(painter.uv, body.faces, painter.boxes)
    # Hidden only by someone drawn later (nearer): a keypoint just outside its own tiny silhouette may
    # show a person behind.
    n = len(area)
    rank = np.empty(n + 1, np.int64)
    rank[painter.order] = np.arange(n)
    rank[n] = -1  # owner -1 (ground) indexes this
    occluded = rank[painter.owner] > rank[:n, None]
    return Rendered(visibility=np.clip(painter.shown / np.maximum(area, 1), 0, 1), keypoint_occluded=occluded)


def truth(
    scene: Scene,
    body: BodyModel,
    geometry: tuple[np.ndarray, np.ndarray, np.ndarray],
    rendered: Rendered,
    image_name: str,
) -> Truth:
    """The frame's ground truth (schemas/truth.py). Keypoint v is 0 outside the image, 1 where a nearer
    person is drawn over it, else 2 (a body part hiding its own keypoint still counts as visible).
    geometry = body.numpy_forward of the scene's people (vertices, joints, coco17)."""
    cam = scene.camera
    verts, joints, coco = geometry
    uv = cam.project(verts)
    kp = cam.project(coco)
    torso = joints[:, TORSO_JOINTS].mean(1)
    p = scene.plane
    hvip3d = torso - (torso @ p[:3] + p[3])[:, None] * p[:3]
    hvip2d = cam.project(hvip3d)
    size = np.array([cam.width, cam.height], float)
    statures = body.statures(scene.shape)
    people = []
    for i in range(len(scene.pose)):
        lo, hi = uv[i].min(0), uv[i].max(0)
        box = np.concatenate([np.clip(lo, 0, size), np.clip(hi, 0, size)])
        if (box[2:] - box[:2]).min() < 1:  # entirely outside the image: not part of the truth
            continue
        inside = (kp[i] >= 0).all(1) & (kp[i] < size).all(1)
        full = np.prod(hi - lo)
        cut = 1 - np.prod(box[2:] - box[:2]) / full if full > 0 else 1.0
        kind = "truncation" if cut > 0.3 else "severe_occlusion" if rendered.visibility[i] < 0.5 else "normal"
        people.append(
            PersonTruth(
                bbox=tuple(float(v) for v in box),
                keypoints=[
                    [float(x / cam.width), float(y / cam.height), (1 if hid else 2) if ok else 0]
                    for (x, y), ok, hid in zip(kp[i], inside, rendered.keypoint_occluded[i], strict=True)
                ],
                type=kind,
                hvip2d=tuple(float(v) for v in hvip2d[i]),
                hvip3d=tuple(float(v) for v in hvip3d[i]),
                torso_center=tuple(float(v) for v in torso[i]),
                smpl=SmplParams(
                    pose=[float(v) for v in scene.pose[i]],
                    shape=[float(v) for v in scene.shape[i]],
                    transl=tuple(float(v) for v in scene.transl[i]),
                ),
                visibility=float(rendered.visibility[i]),
                support=str(scene.support[i]),
                stature=float(statures[i]),
                surface_height=float(scene.surface[i]),
            )
        )
    return Truth(
        image_shape=ImageShape(height=cam.height, width=cam.width),
        intrinsics=[[float(v) for v in r] for r in cam.K],
        ground_plane=tuple(float(v) for v in scene.plane),
        body_model=BodyModelInfo(name=body.name, sha256=body.sha256),
        frame_info={image_name: people},
        levels=scene.levels,
    )


def synthesize(cfg: SyntheticConfig, out_dir: Path, body: BodyModel, bank: PoseBank) -> tuple[Path, Path]:
    """Lay out, render and annotate one frame into out_dir: (<name>.jpg or .tif, truth.json)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = cfg.image_name
    scene = layout(cfg, bank, body)
    geometry = body.numpy_forward(scene.pose, scene.shape, scene.transl)
    keypoints = scene.camera.project(geometry[2])
    rendered = render(scene, body, geometry[0], keypoints, cfg, out_dir / name, cfg.format)
    path = out_dir / TRUTH_FILE
    write_truth(truth(scene, body, geometry, rendered, name), path)
    return out_dir / name, path


def synthesize_frame(cfg: SyntheticConfig, out_dir: Path) -> tuple[Path, Path]:
    """synthesize with cfg.body and the shipped pose bank."""
    from tasks.poses import load_bank

    return synthesize(cfg, out_dir, BodyModel.load(cfg.body), load_bank())
