"""Training and held-out evaluation of the embedded regressor on synthetic people made on the fly.

A sample is one person of the shipped body model seen by a pinhole camera:
- pose: a real motion-capture pose (tasks/data/poses_smpl24.npz, mirrored), split by clip into
  train / held-out (every clip whose crc32 % 10 == 0 is held out); betas ~ N(0, 1) clipped to 2.5;
- camera: image 2000-30000 px wide (4:3 to 2:1), focal 0.8-1.6 x its diagonal, looking down 0-45
  degrees with up to 5 degrees of roll; the person upright along gravity, facing any direction;
- size: crop height b log-uniform in 24-1000 px, anywhere in the image;
- box: the tight box of the projected mesh, each side jittered by up to 5% of its size;
- keypoints (what a detector and a pose network give): the projected COCO-17 with Gaussian jitter of
  1-5% of the box height, 10% of joints dropped (confidence 0), 10% low-confidence with 3x the
  jitter, and 5% of people with one limb pair's left and right swapped.

Image mode (tasks/models/embedded.py ImageRegressor) also sees each person's crop, cut by the regress
stage's own crop code (tasks/pose2d.crop_from_levels) from an imaginary pyramid whose levels draw, on
demand, the person (flat-shaded, tasks/synth.draw_person, random clothes and skin) over a window of a
real photograph (tasks/data/backgrounds): so a 30 px person is a blurry upsampled crop exactly as in a
real frame. Then per crop: colour gain, blur and pixel noise, and 10% of crops with a random block of
another photograph over them. It starts from the keypoints-mode weights (--init) and the ImageNet
MobileNetV2 features.

Losses (CrowdRec eq. 2-6): 5.0 x reprojection of COCO-17 (J3D + t projected with f, box-normalised,
noise-free targets), 5.0 x SMPL parameters (rotation matrices and betas, L2), 1.0 x pelvis-aligned 3D
joints, 0.1 x pelvis-aligned vertices; plus 1.0 x the crop camera against its true value (log scale
and offsets), which synthetic data makes available and which the depth of each person depends on.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import roma
import torch

from tasks import InputError
from tasks.evaluate import similarity_fit
from tasks.models.body import BodyModel
from tasks.models.cliff import N_JOINTS
from tasks.models.embedded import ImageRegressor, KeypointRegressor, load_embedded
from tasks.pose2d import crop_from_levels
from tasks.poses import PoseBank, aa_to_matrix, load_bank, matrix_to_aa
from tasks.regress import (
    CROP_RESCALE,
    CROP_SIZE,
    box_inputs,
    cam_crop_to_full,
    normalise_crops,
    project,
    to_crop_units,
)
from tasks.scenery import child_shapes, posed
from tasks.synth import draw_person, face_materials, person_palette

BACKGROUNDS = Path(__file__).parent / "data" / "backgrounds"
BANDS = ((24, 40), (40, 64), (64, 128), (128, 224), (224, 1001))  # crop height b, px (RSC-Net ranges)
# The 14 joints of the usual PA-MPJPE protocol (LSP: ankles, knees, hips, wrists, elbows, shoulders, neck,
# head) taken from the SMPL joints: the protocol's own H36M joint regressor does not ship with SMPL.
LSP14 = (7, 8, 4, 5, 1, 2, 20, 21, 18, 19, 16, 17, 12, 15)
_COCO_SWAPS = ([5, 7, 9], [6, 8, 10]), ([11, 13, 15], [12, 14, 16])  # (left, right) arm and leg


def split_of(clip: np.ndarray) -> np.ndarray:
    """(N,) clip names -> (N,) bool, True for held-out clips."""
    return np.array([zlib.crc32(str(c).encode()) % 10 == 0 for c in clip])


@dataclass
class Batch:
    """Per sample: keypoints (N, 17, 3) noisy detector-like input, px; boxes (N, 4) px; image_wh (N, 2);
    focal (N,) px; rotmat (N, 24, 3, 3), betas (N, 10), transl (N, 3) m: the truth; joints (N, 24, 3),
    coco (N, 17, 3), verts (N, V, 3) m, camera frame with transl."""

    keypoints: torch.Tensor
    boxes: torch.Tensor
    image_wh: torch.Tensor
    focal: torch.Tensor
    rotmat: torch.Tensor
    betas: torch.Tensor
    transl: torch.Tensor
    joints: torch.Tensor
    coco: torch.Tensor
    verts: torch.Tensor


def _camera_basis(pitch: np.ndarray, roll: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """(N,) radians -> (N, 3, 3) columns left, up, facing of an upright person, OpenCV camera frame."""
    n = len(pitch)
    up = np.stack([np.zeros(n), -np.cos(pitch), -np.sin(pitch)], 1)
    fwd = np.stack([np.zeros(n), -np.sin(pitch), np.cos(pitch)], 1)
    right = np.tile([1.0, 0.0, 0.0], (n, 1))
    c, s = np.cos(roll), np.sin(roll)
    rz = np.zeros((n, 3, 3))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = c, -s, s, c, 1.0
    up, fwd, right = (np.einsum("nij,nj->ni", rz, v) for v in (up, fwd, right))
    facing = np.cos(heading)[:, None] * fwd + np.sin(heading)[:, None] * right
    left = np.cross(up, facing)
    return np.stack([left, up, facing], axis=-1)


TRAIN_ACTIVITIES = ("bench", "ground_sit", "crouch", "ride", "jump")


def _activities(
    rng: np.random.Generator, pose: np.ndarray, betas: np.ndarray, body: BodyModel, activities: float,
    children: float, only: str | None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """pose (n, 72) and betas (n, 10) with the people sample() gives other activities and shapes."""
    n = len(pose)
    if only is None:
        kind = np.where(rng.uniform(size=n) < activities, rng.integers(0, len(TRAIN_ACTIVITIES), n), -1)
        child = rng.uniform(size=n) < children
    else:
        kind = np.full(n, TRAIN_ACTIVITIES.index(only) if only in TRAIN_ACTIVITIES else -1)
        child = np.full(n, only == "child")
    pose = pose.reshape(n, 24, 3).copy()
    for k, name in enumerate(TRAIN_ACTIVITIES):
        if (kind == k).any():
            pose[kind == k] = posed(name, pose[kind == k], rng)
    betas = betas.copy()
    betas[child] = child_shapes(rng, int(child.sum()), body)
    return pose.reshape(n, 72), betas


def sample(
    rng: np.random.Generator,
    n: int,
    poses: np.ndarray,
    body: BodyModel,
    b_range: tuple[float, float] = (24.0, 1000.0),
    noise: bool = True,
    activities: float = 0.0,
    children: float = 0.0,
    only: str | None = None,
) -> Batch:
    """n synthetic people (see the module docstring); poses (M, 24, 3) axis-angle to draw from. A
    share `activities` of them sit, crouch, ride or jump (tasks/scenery.posed, one of TRAIN_ACTIVITIES
    each) and a share `children` has a child's shape (tasks/scenery.child_shapes); `only` makes
    everyone one activity of TRAIN_ACTIVITIES, "stand" or "child" (held-out metrics per activity)."""
    pose = poses[rng.integers(0, len(poses), n)].reshape(n, 72).astype(np.float64)
    betas = np.clip(rng.normal(0.0, 1.0, (n, 10)), -2.5, 2.5)
    if activities or children or only:
        pose, betas = _activities(rng, pose, betas, body, activities, children, only)
    basis = _camera_basis(
        np.radians(rng.uniform(0, 45, n)), np.radians(rng.uniform(-5, 5, n)), rng.uniform(-np.pi, np.pi, n)
    )
    pose[:, :3] = matrix_to_aa(basis @ aa_to_matrix(pose[:, :3]))
    width = rng.uniform(2000, 30000, n)
    wh = np.stack([width, width / rng.uniform(4 / 3, 2.0, n)], 1)
    focal = np.hypot(wh[:, 0], wh[:, 1]) * rng.uniform(0.8, 1.6, n)

    verts0, joints0, _ = body.numpy_forward(pose, betas)
    # (n, 3, V): numpy reduces a contiguous last axis many times faster than axis 1 of (n, V, 3).
    vt = np.ascontiguousarray(verts0.transpose(0, 2, 1))
    extent = vt.max(-1) - vt.min(-1)  # (n, 3) m; the box is about the larger of y and x,z extents
    size_m = np.maximum(extent[:, 1], 0.75 * np.maximum(extent[:, 0], extent[:, 2]))
    b = np.exp(rng.uniform(np.log(b_range[0]), np.log(b_range[1]), n))
    depth = focal * size_m * 1.1 / b
    uv = rng.uniform(0.05, 0.95, (n, 2)) * wh
    pelvis = np.concatenate([(uv - wh / 2) / focal[:, None], np.ones((n, 1))], 1) * depth[:, None]
    transl = pelvis - joints0[:, 0]
    # Bit for bit what body.numpy_forward(pose, betas, transl) returns (smplx adds transl in
    # float32; COCO-17 is read off the moved mesh), without a second forward pass.
    t32 = transl.astype(np.float32)
    verts = verts0 + t32[:, None]
    joints32 = joints0.astype(np.float32) + t32[:, None]
    with torch.no_grad():
        coco = body.coco17(torch.from_numpy(verts), torch.from_numpy(joints32)).numpy().astype(np.float64)
    joints = joints32.astype(np.float64)

    def px(x: np.ndarray) -> np.ndarray:
        return focal[:, None, None] * x[..., :2] / x[..., 2:] + wh[:, None, :] / 2

    vpx = np.ascontiguousarray(px(verts.astype(np.float64)).transpose(0, 2, 1))  # (n, 2, V)
    boxes = np.concatenate([vpx.min(-1), vpx.max(-1)], 1)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    kp = np.concatenate([px(coco), np.ones((n, 17, 1))], -1)
    if noise:
        boxes += rng.uniform(-0.05, 0.05, (n, 4)) * np.stack([bw, bh, bw, bh], 1)
        sigma = rng.uniform(0.01, 0.05, (n, 1, 1)) * bh[:, None, None]
        low = rng.uniform(size=(n, 17)) < 0.1
        kp[..., :2] += rng.normal(0, 1, (n, 17, 2)) * sigma * np.where(low, 3.0, 1.0)[..., None]
        kp[..., 2] = np.where(low, rng.uniform(0.0, 0.3, (n, 17)), rng.uniform(0.3, 1.0, (n, 17)))
        for i in np.flatnonzero(rng.uniform(size=n) < 0.05):
            left, right = _COCO_SWAPS[rng.integers(0, 2)]
            kp[i, left + right] = kp[i, right + left]
        drop = rng.uniform(size=(n, 17)) < 0.1
        kp[drop] = 0.0

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=torch.float32)

    return Batch(
        keypoints=t(kp), boxes=t(boxes), image_wh=t(wh), focal=t(focal),
        rotmat=roma.rotvec_to_rotmat(t(pose).reshape(n, N_JOINTS, 3)), betas=t(betas), transl=t(transl),
        joints=t(joints), coco=t(coco), verts=t(verts),
    )  # fmt: skip


def load_backgrounds(folder: Path = BACKGROUNDS) -> list[np.ndarray]:
    """The photographs crops are drawn over, (h, w, 3) uint8 RGB each."""
    images = [cv2.imread(str(f))[..., ::-1].copy() for f in sorted(folder.glob("*.jpg"))]
    if not images:
        raise InputError(f"no background photographs (*.jpg) in {folder}")
    return images


class _SyntheticLevel:
    """Level k (downsampled 2^k) of an imaginary full image of size wh (2,) px showing one person (uv
    (V, 2) full-image px, verts (V, 3) m, per-face colours face_rgb (F, 3)) over a photograph; only the
    region read is drawn."""

    def __init__(
        self, k: int, wh: np.ndarray, uv: np.ndarray, verts: np.ndarray, faces: np.ndarray,
        face_rgb: np.ndarray, photo: np.ndarray, rng: np.random.Generator,
    ) -> None:  # fmt: skip
        self.f = 2.0**k
        self.shape = (int(np.ceil(wh[1] / self.f)), int(np.ceil(wh[0] / self.f)), 3)
        self.uv, self.verts, self.faces, self.face_rgb = uv / self.f, verts, faces, face_rgb
        self.photo, self.rng = photo, rng

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        ys, xs = key
        h, w = ys.stop - ys.start, xs.stop - xs.start
        ph, pw = self.photo.shape[:2]
        scale = min(self.rng.uniform(0.3, 1.5) * min(ph / h, pw / w), ph / h, pw / w)
        wh_, ww_ = max(int(h * scale), 1), max(int(w * scale), 1)
        y0, x0 = self.rng.integers(0, ph - wh_ + 1), self.rng.integers(0, pw - ww_ + 1)
        img = cv2.resize(self.photo[y0 : y0 + wh_, x0 : x0 + ww_], (w, h), interpolation=cv2.INTER_AREA)
        img = np.ascontiguousarray(img)
        draw_person(img, self.uv - [xs.start, ys.start], self.verts, self.faces, self.face_rgb)
        if self.rng.uniform() < 0.5:
            img = cv2.GaussianBlur(img, (0, 0), self.rng.uniform(0.3, 1.2))
        noise = self.rng.normal(0, self.rng.uniform(0, 6), img.shape)
        return np.clip(img + noise, 0, 255).astype(np.uint8)


def render_crops(
    rng: np.random.Generator, batch: Batch, body: BodyModel, photos: list[np.ndarray]
) -> np.ndarray:
    """(N, 256, 192, 3) uint8: each person's regress-stage crop (its noisy box, CLIFF's crop rule) of
    the person drawn over a random photograph, with colour and occlusion augmentation."""
    n = len(batch.boxes)
    wh = batch.image_wh.numpy().astype(np.float64)
    f = batch.focal.numpy().astype(np.float64)
    verts = batch.verts.numpy().astype(np.float64)
    uv = f[:, None, None] * verts[..., :2] / verts[..., 2:] + wh[:, None, :] / 2
    faces = body.faces
    material = face_materials(body)
    palette = person_palette(rng, n)
    crops = np.empty((n, CROP_SIZE[1], CROP_SIZE[0], 3), np.uint8)
    for i in range(n):
        photo = photos[rng.integers(0, len(photos))]
        levels = [
            _SyntheticLevel(k, wh[i], uv[i], verts[i], faces, palette[i, material], photo, rng)
            for k in range(8)
        ]
        crop = crop_from_levels(levels, batch.boxes[i].numpy().astype(np.float64), CROP_SIZE, CROP_RESCALE)[0]
        crop = crop * rng.uniform(0.75, 1.25, 3) + rng.uniform(-20, 20)
        if rng.uniform() < 0.1:  # something in front of the person
            other = photos[rng.integers(0, len(photos))]
            h, w = (rng.uniform(0.2, 0.6, 2) * crop.shape[:2]).astype(int)
            y, x = rng.integers(0, crop.shape[0] - h), rng.integers(0, crop.shape[1] - w)
            oy, ox = rng.integers(0, other.shape[0] - h), rng.integers(0, other.shape[1] - w)
            crop[y : y + h, x : x + w] = other[oy : oy + h, ox : ox + w]
        crops[i] = np.clip(crop, 0, 255)
    return crops


@dataclass(frozen=True)
class Inputs:
    """What the network sees of a batch, and the crop geometry: centre (N, 2) px, b (N,) px."""

    keypoints: torch.Tensor
    info: torch.Tensor
    centre: torch.Tensor
    b: torch.Tensor


def inputs(batch: Batch) -> Inputs:
    """The network's inputs exactly as the regress stage makes them (tasks/regress.py box_inputs)."""
    x = box_inputs(
        batch.boxes.numpy(), batch.keypoints.numpy(), batch.focal.numpy(), (batch.image_wh / 2).numpy()
    )
    return Inputs(x.keypoints, x.info, x.centre, x.b)


@dataclass(frozen=True)
class Prediction:
    """rotmat (N, 24, 3, 3), betas (N, 10), cam (N, 3), transl (N, 3) m; joints (N, 24, 3), coco
    (N, 17, 3), verts (N, V, 3) m in the camera frame including transl."""

    rotmat: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor
    transl: torch.Tensor
    joints: torch.Tensor
    coco: torch.Tensor
    verts: torch.Tensor


def predict(
    model: KeypointRegressor, body: BodyModel, batch: Batch, x: Inputs, crops: np.ndarray | None = None
) -> Prediction:
    """The model on a batch; crops (N, 256, 192, 3) uint8 for an image-mode model."""
    images = None if crops is None else normalise_crops(crops)
    rotmat, betas, cam = model.predict(images, x.keypoints, x.info, x.b)
    aa = roma.rotmat_to_rotvec(rotmat).reshape(-1, 72)
    transl = cam_crop_to_full(cam, x.centre, x.b, batch.focal, batch.image_wh / 2)
    out = body(aa[:, :3], aa[:, 3:], betas, transl)
    return Prediction(rotmat, betas, cam, transl, out.joints, out.coco17, out.vertices)


def true_cam(batch: Batch, x: Inputs) -> torch.Tensor:
    """(N, 3) the crop camera (s, tx, ty) that eq. 1 maps to the true translation."""
    bs = 2 * batch.focal / batch.transl[:, 2]
    s = bs / x.b
    offset = 2 * (x.centre - batch.image_wh / 2) / bs[:, None]
    return torch.cat([s[:, None], batch.transl[:, :2] - offset], 1)


LOSS_WEIGHTS = {"reprojection": 5.0, "smpl": 5.0, "joints": 1.0, "vertices": 0.1, "camera": 1.0}


def losses(batch: Batch, x: Inputs, p: Prediction) -> dict[str, torch.Tensor]:
    """Unweighted loss terms (see LOSS_WEIGHTS), each a scalar mean over the batch."""
    target2d = to_crop_units(project(batch.coco, batch.focal, batch.image_wh / 2), x.centre, x.b)
    pred2d = to_crop_units(project(p.coco, batch.focal, batch.image_wh / 2), x.centre, x.b)
    cam = true_cam(batch, x)
    return {
        # Clamped at a box's size: a camera behind the people must not blow the gradients up.
        "reprojection": ((pred2d - target2d) ** 2).sum(-1).clamp(max=1.0).mean(),
        "smpl": ((p.rotmat - batch.rotmat) ** 2).mean() + ((p.betas - batch.betas) ** 2).mean(),
        "joints": (((p.joints - p.joints[:, :1]) - (batch.joints - batch.joints[:, :1])) ** 2).sum(-1).mean(),
        "vertices": (((p.verts - p.joints[:, :1]) - (batch.verts - batch.joints[:, :1])) ** 2).sum(-1).mean(),
        "camera": ((p.cam[:, 0].clamp(min=1e-3).log() - cam[:, 0].log()) ** 2).mean()
        + ((p.cam[:, 1:] - cam[:, 1:]) ** 2).sum(-1).mean(),
    }


@dataclass
class TrainConfig:
    steps: int = 30000
    batch: int = 256
    lr: float = 5e-4
    weight_decay: float = 1e-4
    seed: int = 0
    width: int = 512
    blocks: int = 2  # residual blocks in the keypoint encoder (0: the first weights' plain MLP, 7b06e53)
    dropout: float = 0.0  # in the iterative regressor; the data are endless, nothing to overfit
    body: str = "builtin:neutral"
    log_every: int = 500
    mode: str = "keypoints"  # or "image"
    init: str | None = None  # weights to start from (image mode: keypoints-mode weights)
    activities: float = 0.0  # share of people seated, crouching, riding or jumping (sample())
    children: float = 0.0  # share of people with a child's shape


@dataclass
class Metrics:
    """Held-out accuracy by crop band: people, MPJPE and PA-MPJPE (mm, 24 SMPL joints, pelvis-aligned),
    PA-MPJPE over LSP14 alone (each aligned on its own joints), root depth error (% of the true depth,
    median and mean), and the same pooled for b >= 100 px; per activity ("stand", TRAIN_ACTIVITIES,
    "child": everyone doing it, all sizes) the same plus the median stature error (% of the true)."""

    bands: dict[str, dict[str, float]] = field(default_factory=dict)
    large: dict[str, float] = field(default_factory=dict)
    activities: dict[str, dict[str, float]] = field(default_factory=dict)


def _summary(mpjpe: np.ndarray, pa: np.ndarray, pa14: np.ndarray, depth: np.ndarray) -> dict[str, float]:
    return {
        "people": len(mpjpe),
        "mpjpe_mm": float(np.mean(mpjpe)),
        "pa_mpjpe_mm": float(np.mean(pa)),
        "pa_mpjpe_lsp14_mm": float(np.mean(pa14)),
        "depth_err_pct_median": float(np.median(depth)),
        "depth_err_pct_mean": float(np.mean(depth)),
    }


def pa_mpjpe_mm(pred: np.ndarray, true: np.ndarray) -> float:
    """pred, true (J, 3) joints, m -> mean joint error after the similarity fit of pred onto true, mm."""
    s, r, t = similarity_fit(pred, true)
    return float(np.linalg.norm(s * pred @ r.T + t - true, axis=-1).mean() * 1000)


@torch.inference_mode()
def evaluate(
    model: KeypointRegressor, body: BodyModel, poses: np.ndarray, seed: int, people: int = 2000
) -> Metrics:
    """Accuracy on `people` held-out synthetic people drawn with `seed` (a seed training never uses),
    and on people // 4 of each activity."""
    photos = load_backgrounds() if model.uses_image else []
    model.eval()
    # the same people whatever the model's mode: draw_rng only draws the crops
    mpjpe, pa_mpjpe, pa_lsp, depth, b, _ = _measure(
        model, body, poses, (np.random.default_rng(seed), np.random.default_rng([seed, 1])), photos, people
    )
    out = Metrics()
    for lo, hi in BANDS:
        sel = (b >= lo) & (b < hi)
        out.bands[f"{lo}-{hi - 1}"] = _summary(mpjpe[sel], pa_mpjpe[sel], pa_lsp[sel], depth[sel])
    sel = b >= 100
    out.large = _summary(mpjpe[sel], pa_mpjpe[sel], pa_lsp[sel], depth[sel])
    for k, only in enumerate(("stand", *TRAIN_ACTIVITIES, "child")):
        rngs = (np.random.default_rng([seed, 2, k]), np.random.default_rng([seed, 3, k]))
        *m, stature = _measure(model, body, poses, rngs, photos, people // 4, only)
        out.activities[only] = _summary(*m[:4]) | {"stature_err_pct_median": float(np.median(stature))}
    return out


def _measure(
    model: KeypointRegressor, body: BodyModel, poses: np.ndarray,
    rngs: tuple[np.random.Generator, np.random.Generator], photos: list[np.ndarray], people: int,
    only: str | None = None,
) -> tuple[np.ndarray, ...]:  # fmt: skip
    """Per person (people,): MPJPE, PA-MPJPE, PA-MPJPE LSP14 (mm), root depth error (%), crop size b
    (px) and stature error (%) of `people` drawn from rngs (people, crops) doing `only` (sample())."""
    rng, draw_rng = rngs
    mp, pa, pa14, dep, bs, st = [], [], [], [], [], []
    for i in range(0, people, 500):
        batch = sample(rng, min(500, people - i), poses, body, only=only)
        x = inputs(batch)
        crops = render_crops(draw_rng, batch, body, photos) if model.uses_image else None
        p = predict(model, body, batch, x, crops)
        pj = (p.joints - p.joints[:, :1]).numpy().astype(np.float64)
        tj = (batch.joints - batch.joints[:, :1]).numpy().astype(np.float64)
        mp.append(np.linalg.norm(pj - tj, axis=-1).mean(1) * 1000)
        for a, b in zip(pj, tj, strict=True):
            pa.append(pa_mpjpe_mm(a, b))
            pa14.append(pa_mpjpe_mm(a[list(LSP14)], b[list(LSP14)]))
        dep.append(np.abs(p.transl[:, 2] - batch.transl[:, 2]).numpy() / batch.transl[:, 2].numpy() * 100)
        bs.append(x.b.numpy())
        true_st = body.statures(batch.betas.numpy())
        st.append(np.abs(body.statures(p.betas.numpy()) - true_st) / true_st * 100)
    return (np.concatenate(mp), np.array(pa), np.array(pa14), np.concatenate(dep), np.concatenate(bs),
            np.concatenate(st))  # fmt: skip


def train(
    cfg: TrainConfig, log: Callable[[str], None] = print
) -> tuple[KeypointRegressor, dict[str, object]]:
    """Train a regressor (cfg.mode) from cfg.init or from scratch; returns it (eval mode) and the
    run record. Torch's generator (initial weights, dropout) is seeded with cfg.seed inside a fork of
    it: the caller's stays as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        return _train(cfg, log)


def _train(cfg: TrainConfig, log: Callable[[str], None]) -> tuple[KeypointRegressor, dict[str, object]]:
    rng = np.random.default_rng(cfg.seed)
    draw_rng = np.random.default_rng([cfg.seed, 1])
    body = BodyModel.load(cfg.body)
    bank = load_bank()
    held = split_of(bank.clip)
    poses = bank.poses[~held]
    model = make_model(cfg)
    photos = load_backgrounds() if model.uses_image else []
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    start = time.perf_counter()
    running: dict[str, float] = {}
    for step in range(1, cfg.steps + 1):
        model.train()
        batch = sample(rng, cfg.batch, poses, body, activities=cfg.activities, children=cfg.children)
        x = inputs(batch)
        crops = render_crops(draw_rng, batch, body, photos) if model.uses_image else None
        terms = losses(batch, x, predict(model, body, batch, x, crops))
        loss = sum(LOSS_WEIGHTS[k] * v for k, v in terms.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        for k, v in terms.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        if step % cfg.log_every == 0 or step == cfg.steps:
            n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
            parts = " ".join(f"{k} {v / n:.4g}" for k, v in running.items())
            log(f"step {step}/{cfg.steps} {time.perf_counter() - start:.0f}s {parts}")
            running = {}
    model.eval()
    record = {
        "config": asdict(cfg),
        "model": {
            "mode": cfg.mode,
            "width": cfg.width,
            "min_conf": model.min_conf,
            "blocks": cfg.blocks,
            "dropout": cfg.dropout,
        },
        "train_seconds": round(time.perf_counter() - start, 1),
        "held_out_clips": len(np.unique(bank.clip[held])),
        "train_poses": len(poses),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "body": {"name": body.name, "sha256": body.sha256},
    }
    return model, record


def make_model(cfg: TrainConfig) -> KeypointRegressor:
    """The untrained network of cfg.mode, with cfg.init's weights where it has them (image mode: the
    keypoint path and regressor of keypoints-mode weights) and, in image mode, ImageNet features."""
    if cfg.mode not in ("keypoints", "image"):
        raise InputError(f"unknown regressor mode {cfg.mode!r}; available: keypoints, image")
    kind = KeypointRegressor if cfg.mode == "keypoints" else ImageRegressor
    model = kind(width=cfg.width, blocks=cfg.blocks, dropout=cfg.dropout)
    if isinstance(model, ImageRegressor):
        model.load_imagenet()
    if cfg.init:
        start = load_embedded(cfg.init)
        try:
            missing, unexpected = model.load_state_dict(start.state_dict(), strict=False)
        except RuntimeError:  # shapes differ
            missing, unexpected = ["(shapes)"], []
        image_only = ("backbone.", "fuse.", "reduce.", "project.")
        if unexpected or any(not k.startswith(image_only) for k in missing):
            raise InputError(
                f"{cfg.init}: cannot start a {cfg.mode}-mode regressor of width {cfg.width} "
                f"with {cfg.blocks} blocks"
            )
    return model


def held_out_poses() -> np.ndarray:
    bank: PoseBank = load_bank()
    return bank.poses[split_of(bank.clip)]


def write_manifest(path: Path, record: dict[str, object]) -> None:
    from schemas.io import atomic_write_text

    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def train_to_file(
    cfg: TrainConfig, out: Path, command: str, threads: int, fp16: bool, eval_seed: int, eval_people: int,
    log: Callable[[str], None] = print,
) -> dict[str, object]:  # fmt: skip
    """Train a regressor with `threads` torch CPU threads (results depend on it), store its weights at
    `out` (float16 if `fp16`: half the file, and the held-out metrics are those of the rounded weights),
    evaluate it on held-out clips (eval_seed, eval_people) and write the manifest beside it (with
    `command`, the one that reproduces it); returns the manifest's record."""
    import io

    from schemas.io import atomic_output
    from tasks.files import file_sha256
    from tasks.models.embedded import manifest_path

    torch.set_num_threads(threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    model, record = train(cfg, log=log)
    state = model.state_dict()
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        model.load_state_dict(state)
    metrics = evaluate(model, BodyModel.load(cfg.body), held_out_poses(), seed=eval_seed, people=eval_people)
    buf = io.BytesIO()  # torch.save names its archive after the file: bytes would depend on the name
    torch.save(state, buf)
    with atomic_output(out) as tmp:
        tmp.write_bytes(buf.getvalue())
    record["eval"] = {"seed": eval_seed, "people": eval_people, "held_out": "clips", **vars(metrics)}
    record["sha256"] = file_sha256(out)
    record["command"] = command
    write_manifest(manifest_path(out), record)
    return record
