"""The camera from the crowd: exact on ideal people, close on synthetic crowds, refused when the
people do not determine it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tasks.camera import estimate_camera, head_and_feet


def _people(
    n: int, f: float, pitch_deg: float, wh: tuple[int, int], seed: int = 0, lean: float = 0.0
) -> np.ndarray:
    """COCO keypoints (n, 17, 3) of n upright 1.6 m head-to-ankle segments standing on the ground 12 m
    below a camera pitched down by pitch_deg; only the face points and the ankles are set."""
    rng = np.random.default_rng(seed)
    p = math.radians(pitch_deg)
    up = np.array([0.0, -math.cos(p), -math.sin(p)])
    fwd = np.array([0.0, -math.sin(p), math.cos(p)])
    right = np.array([1.0, 0.0, 0.0])
    w, h = wh
    kp = np.zeros((n, 17, 3))
    i = 0
    while i < n:
        d, x = rng.uniform(10, 120), rng.uniform(-60, 60)
        foot = -12.0 * up + d * fwd + x * right
        head = foot + 1.6 * up + lean * rng.normal(0, 1, 3) * [1, 0, 1]
        uv = [f * q[:2] / q[2] + [w / 2, h / 2] for q in (head, foot)]
        if min(foot[2], head[2]) <= 0 or not all(0 <= u[0] < w and 0 <= u[1] < h for u in uv):
            continue
        kp[i, :5, :2], kp[i, 15:, :2] = uv[0], uv[1]
        kp[i, :5, 2] = kp[i, 15:, 2] = 1.0
        i += 1
    return kp


def test_ideal_people_give_the_focal_and_pitch() -> None:
    wh = (8192, 4096)
    f = 1.3 * math.hypot(*wh)
    est = estimate_camera(_people(200, f, 12.0, wh), wh)
    assert est is not None
    assert est.focal == pytest.approx(f, rel=0.005)
    assert est.pitch_deg == pytest.approx(12.0, abs=0.1) and abs(est.roll_deg) < 0.1
    assert est.height == pytest.approx(12.0 / 1.6, rel=0.01)
    assert est.plane[1] < -0.9 and est.focal_rel_std < 0.01


def test_a_level_camera_does_not_determine_the_focal() -> None:
    wh = (8192, 4096)
    kp = _people(300, 1.3 * math.hypot(*wh), 0.0, wh, lean=0.05)
    assert estimate_camera(kp, wh) is None


def test_a_held_focal_gives_the_ground_of_that_camera() -> None:
    wh = (8192, 4096)
    f = 1.3 * math.hypot(*wh)
    kp = _people(200, f, 12.0, wh, seed=1)
    est = estimate_camera(kp, wh, focal=f)
    assert est is not None and est.focal == f and est.focal_rel_std == 0.0
    assert est.pitch_deg == pytest.approx(12.0, abs=0.05) and abs(est.roll_deg) < 0.05
    assert est.height == pytest.approx(12.0 / 1.6, rel=0.01)
    # a held focal that is wrong (the diagonal, 1/1.3 of it) still fits these people, at another pitch
    wrong = estimate_camera(kp, wh, focal=math.hypot(*wh))
    assert wrong is not None and wrong.focal == math.hypot(*wh)
    assert abs(wrong.pitch_deg - 12.0) > 1.0


def test_a_held_focal_is_no_reason_to_refuse_a_level_camera() -> None:
    wh = (8192, 4096)
    f = 1.3 * math.hypot(*wh)
    kp = _people(300, f, 0.0, wh, lean=0.05)
    est = estimate_camera(kp, wh, focal=f)
    assert est is not None
    assert abs(est.pitch_deg) < 0.3 and abs(est.roll_deg) < 0.3
    assert est.plane[1] == pytest.approx(-1.0, abs=1e-4)


def test_too_few_people_are_refused() -> None:
    wh = (8192, 4096)
    assert estimate_camera(_people(10, 1.3 * math.hypot(*wh), 12.0, wh), wh) is None


def test_a_synthetic_crowd_gives_its_focal_within_its_stated_uncertainty() -> None:
    from schemas.scene import SyntheticConfig
    from tasks.models.body import BodyModel
    from tasks.poses import load_bank
    from tasks.synth import layout

    body = BodyModel.load("builtin:neutral")
    scene = layout(SyntheticConfig(people=800, width=8192, height=4096, seed=21), load_bank(), body)
    _, _, coco = body.numpy_forward(scene.pose, scene.shape, scene.transl)
    kp = np.concatenate([scene.camera.project(coco), np.ones((800, 17, 1))], -1)
    kp[..., :2] += np.random.default_rng(0).normal(0, 3.0, kp[..., :2].shape)  # detector-like jitter, px
    est = estimate_camera(kp, (8192, 4096))
    assert est is not None
    err = abs(math.log(est.focal / scene.camera.f))
    # the diagonal (what `auto` assumes) is 10-40% off for these cameras; the estimate is much closer
    assert err < max(3 * est.focal_rel_std, 0.03) and err < 0.12
    assert abs(math.log(math.hypot(8192, 4096) / scene.camera.f)) > 0.09


def test_head_and_feet_use_confident_points_only() -> None:
    kp = np.zeros((2, 17, 3))
    kp[0, 0] = (10, 5, 0.9)
    kp[0, 1] = (50, 50, 0.1)  # not confident: ignored
    kp[0, 15] = (8, 40, 0.8)
    kp[0, 16] = (12, 44, 0.8)
    kp[1, 15] = (0, 40, 0.8)  # no face
    head, feet, ok = head_and_feet(kp)
    np.testing.assert_allclose(head[0], (10, 5))
    np.testing.assert_allclose(feet[0], (10, 42))
    assert ok.tolist() == [True, False]


def test_frame_camera_for_each_focal_setting() -> None:
    from schemas.scene import CameraConfig
    from tasks.camera import frame_camera

    wh = (8192, 4096)
    f = 1.3 * math.hypot(*wh)
    kp = _people(200, f, 12.0, wh)
    auto = frame_camera(wh, CameraConfig(), kp)
    assert (auto.focal, auto.pp, auto.focal_source) == (
        pytest.approx(math.hypot(*wh)),
        (4096, 2048),
        "diagonal",
    )
    assert not auto.focal_known and auto.estimate is None
    given = frame_camera(wh, CameraConfig(focal=5000, cx=4000.5, cy=2100), kp)
    assert (given.focal, given.pp, given.focal_source, given.focal_known) == (
        5000,
        (4000.5, 2100),
        "given",
        True,
    )
    est = frame_camera(wh, CameraConfig(focal="estimate"), kp)
    assert est.focal == pytest.approx(f, rel=0.005) and est.focal_source == "estimated" and est.focal_known
    assert est.estimate is not None and est.estimate["pitch_deg"] == pytest.approx(12.0, abs=0.1)
    level = frame_camera(wh, CameraConfig(focal="estimate"), _people(300, f, 0.0, wh, lean=0.05))
    assert level.focal == pytest.approx(math.hypot(*wh)) and not level.focal_known
    assert level.focal_source.startswith("diagonal (not determined")
    assert est.as_dict()["focal"] == est.focal  # what smpl.parquet's metadata and crowd.json carry
