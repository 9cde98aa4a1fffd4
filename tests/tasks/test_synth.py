"""Synthetic frames: exact geometry of the truth, determinism, and pixels that show the people."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import pyvips

from schemas.scene import SyntheticConfig
from schemas.truth import read_truth
from tasks.models.body import BodyModel
from tasks.poses import load_bank
from tasks.synth import keypoint_frame, layout, synthesize

CFG = SyntheticConfig(people=40, width=1600, height=800, seed=7)


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.load("builtin:neutral")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, body: BodyModel) -> tuple[Path, Path]:
    return synthesize(CFG, tmp_path_factory.mktemp("synth"), body, load_bank())


def test_layout_puts_everyone_on_the_ground_apart_in_a_gigacrowd_camera(body: BodyModel) -> None:
    scene = layout(CFG, load_bank(), body)
    diag = math.hypot(CFG.width, CFG.height)
    assert 1.1 <= scene.camera.f / diag <= 1.5 and 10 <= scene.height <= 20
    assert scene.up[1] < -0.9  # up is -y in the camera frame
    verts, _, _ = body.numpy_forward(scene.pose, scene.shape, scene.transl)
    signed = verts @ scene.up + scene.height  # height above the plane, metres
    np.testing.assert_allclose(signed.min(1), 0.0, atol=1e-4)
    assert (signed.max(1) > 1.2).all()  # standing, not lying
    feet = verts.mean(1) - (verts.mean(1) @ scene.up + scene.height)[:, None] * scene.up
    gaps = np.linalg.norm(feet[:, None] - feet[None], axis=-1) + np.eye(len(feet)) * 99
    assert gaps.min() >= CFG.min_gap * 0.99
    assert (verts[..., 2] > 5).all()


def test_keypoint_frame_noise_is_what_it_says(body: BodyModel) -> None:
    cfg = SyntheticConfig(people=300, width=4096, height=2048, seed=5)
    exact = keypoint_frame(cfg, load_bank(), body, jitter=0.0, dropped=0.0)
    assert np.array_equal(exact.kp[..., :2], exact.gt_kp2d) and (exact.kp[..., 2] == 1).all()
    lo, hi = exact.boxes[:, None, :2], exact.boxes[:, None, 2:]
    assert ((exact.gt_kp2d >= lo - 1) & (exact.gt_kp2d <= hi + 1)).all()  # joints inside the mesh's box
    noisy = keypoint_frame(cfg, load_bank(), body)
    kept = noisy.kp[..., 2] > 0
    assert 0.04 < 1 - kept.mean() < 0.06 and (noisy.kp[~kept] == 0).all()
    err = (noisy.kp[..., :2] - noisy.gt_kp2d) / (noisy.boxes[:, 3:4] - noisy.boxes[:, 1:2])[:, :, None]
    assert float(err[kept].std()) == pytest.approx(0.02, rel=0.05)  # 2% of the box height, per axis
    assert np.allclose(noisy.gt_torso, exact.gt_torso) and np.allclose(noisy.gt_plane, exact.gt_plane)


def test_same_seed_same_bytes(made: tuple[Path, Path], tmp_path: Path, body: BodyModel) -> None:
    again = synthesize(CFG, tmp_path, body, load_bank())
    for a, b in zip(made, again, strict=True):
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def test_truth_matches_the_image_and_the_body_model(made: tuple[Path, Path], body: BodyModel) -> None:
    image, truth_path = made
    truth = read_truth(truth_path)
    arr = truth.arrays()
    people = truth.frame_info[image.name]
    assert len(people) == CFG.people
    K = arr.K
    smpl = np.array([p.smpl.pose for p in people]), np.array([p.smpl.shape for p in people])
    transl = np.array([p.smpl.transl for p in people])
    joints, coco = body.joints_numpy(*smpl, transl)
    uv = coco[..., :2] / coco[..., 2:] * K[0, 0] + K[:2, 2]
    inside = arr.keypoint_visibility > 0
    np.testing.assert_allclose(arr.keypoints[inside], uv[inside], atol=1e-3)
    np.testing.assert_allclose(arr.torso, joints[:, [1, 2, 16, 17]].mean(1), atol=1e-5)
    # hvip3d lies on the ground plane, straight below the torso centre.
    np.testing.assert_allclose(arr.hvip3d @ arr.plane[:3] + arr.plane[3], 0.0, atol=1e-5)
    np.testing.assert_allclose(np.cross(arr.torso - arr.hvip3d, arr.plane[:3]), 0.0, atol=1e-5)
    # The people are in the pixels: their boxes differ from the paving around them.
    img = pyvips.Image.new_from_file(str(image)).numpy().astype(float)
    assert img.shape == (CFG.height, CFG.width, 3)
    diffs = []
    for p in people:
        x1, y1, x2, y2 = (int(v) for v in p.bbox)
        if p.type == "normal" and y2 - y1 > 40:
            inner = img[y1:y2, x1:x2]
            ring = img[max(0, y1 - 10) : y2 + 10, max(0, x2) : x2 + 10]
            diffs.append(np.abs(inner.mean((0, 1)) - ring.mean((0, 1))).max())
    assert len(diffs) >= 5 and np.median(diffs) > 10
    assert all(0 <= p.visibility <= 1 for p in people) and np.mean([p.visibility for p in people]) > 0.7


def test_tiled_tiff_output_holds_the_same_frame(
    made: tuple[Path, Path], tmp_path: Path, body: BodyModel
) -> None:
    tif, truth_path = synthesize(CFG.model_copy(update={"format": "tiff"}), tmp_path, body, load_bank())
    assert tif.suffix == ".tif" and truth_path.read_bytes() == made[1].read_bytes().replace(b".jpg", b".tif")
    img = pyvips.Image.new_from_file(str(tif))
    assert img.get("n-pages") >= 2  # pyramid levels
    assert (img.width, img.height, img.bands) == (CFG.width, CFG.height, 3)
    assert img.get("tile-width") == 512
    # Both files are lossy encodings of one rendering.
    jpeg = pyvips.Image.new_from_file(str(made[0])).numpy().astype(float)
    assert np.abs(img.numpy().astype(float) - jpeg).mean() < 3.0


def test_sloped_ground_keeps_people_upright_with_feet_on_the_slope(body: BodyModel) -> None:
    scene = layout(CFG.model_copy(update={"max_slope_deg": 8.0, "seed": 11}), load_bank(), body)
    slope = math.degrees(math.acos(float(scene.normal @ scene.up)))
    assert 0.5 < slope <= 8.0
    verts, joints, _ = body.numpy_forward(scene.pose, scene.shape, scene.transl)
    p = scene.plane
    signed = verts @ p[:3] + p[3]  # distance above the sloped plane, metres
    np.testing.assert_allclose(signed.min(1), 0.0, atol=2e-5)  # float32 vertices tens of metres away
    # Upright along gravity, not along the slope's normal: head above pelvis along `up`.
    spine = joints[:, 15] - joints[:, 0]
    spine /= np.linalg.norm(spine, axis=1, keepdims=True)
    assert np.median(spine @ scene.up) > 0.97
    # The camera is `height` above the ground straight below it, along gravity.
    below = -scene.height * scene.up
    assert abs(below @ p[:3] + p[3]) < 1e-9


def test_keypoints_hidden_by_someone_nearer_are_marked_occluded(made: tuple[Path, Path]) -> None:
    arr = read_truth(made[1]).arrays()
    v = arr.keypoint_visibility
    hidden = np.argwhere(v == 1)
    assert len(hidden) >= 3, "this frame has overlapping people; some keypoints must be hidden"
    assert (v == 2).sum() > 10 * len(hidden)
    for i, k in hidden:
        x, y = arr.keypoints[i, k]
        b = arr.bbox + np.array([-1, -1, 1, 1])  # fills reach up to a pixel past the exact outline
        covers = (b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3])
        nearer = arr.torso[:, 2] < arr.torso[i, 2]
        covers[i] = False
        assert (covers & nearer).any(), f"person {i} keypoint {k} is marked hidden, nobody nearer covers it"
