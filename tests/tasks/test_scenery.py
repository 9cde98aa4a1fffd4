"""The second-generation synthetic world: activities, their poses and supports, terrace, props."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyvips

from schemas.scene import SyntheticConfig
from schemas.truth import read_truth
from tasks.models.body import SMPL_JOINT_NAMES, BodyModel
from tasks.poses import load_bank, within_limits
from tasks.scenery import CHILD_STATURE_M, JUMP_HEIGHT_M, PRESETS, child_shapes, posed
from tasks.synth import Scene, layout, synthesize

J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.load("builtin:neutral")


def _joints(body: BodyModel, pose: np.ndarray) -> np.ndarray:
    """(n, 24, 3) body-frame poses -> (n, 24, 3) joints, body frame (x left, y up, z facing)."""
    _, joints, _ = body.numpy_forward(pose.reshape(len(pose), 72), np.zeros((len(pose), 10)))
    return joints


def test_procedural_poses_bend_the_way_their_activity_does(body: BodyModel) -> None:
    rng = np.random.default_rng(0)
    base = load_bank().poses[load_bank().crowd][:50].astype(np.float64)
    base[:, 0] = 0.0  # upright, facing +z
    stand = _joints(body, base)
    for kind in ("bench", "ground_sit", "crouch", "ride", "jump"):
        p = posed(kind, base, rng)
        assert within_limits(p).all()
        j = _joints(body, p)
        thigh = j[:, J["l_knee"]] - j[:, J["l_hip"]]
        drop = (j[:, J["pelvis"], 1] - j[:, [J["l_ankle"], J["r_ankle"]], 1].min(1)) / (
            stand[:, J["pelvis"], 1] - stand[:, [J["l_ankle"], J["r_ankle"]], 1].min(1)
        )  # pelvis height over the lower ankle, against the same person standing
        if kind in ("bench", "ground_sit", "crouch"):
            assert (thigh[:, 2] > 0.3).all()  # thighs forward (+z), not down: a wrong sign points back
            assert (drop < 0.75).all()
        if kind == "ride":
            hands, shoulders = j[:, [J["l_wrist"], J["r_wrist"]]], j[:, [J["l_shoulder"], J["r_shoulder"]]]
            assert (hands[..., 2] > shoulders[..., 2] + 0.2).all()  # reaching forward to the handlebar
            assert (j[:, J["neck"], 2] > j[:, J["pelvis"], 2] + 0.1).all()  # leaning forward
        if kind == "jump":  # knees bent 20-60 degrees: thigh and shin no longer in line
            shin = j[:, J["l_ankle"]] - j[:, J["l_knee"]]
            cos = (thigh * shin).sum(1) / np.linalg.norm(thigh, axis=1) / np.linalg.norm(shin, axis=1)
            assert (np.degrees(np.arccos(cos)) > 19).all() and (np.degrees(np.arccos(cos)) < 61).all()


def test_children_have_child_statures(body: BodyModel) -> None:
    shape = child_shapes(np.random.default_rng(1), 200, body)
    s = body.statures(shape)
    assert CHILD_STATURE_M[0] - 0.01 <= s.min() and s.max() <= CHILD_STATURE_M[1] + 0.01
    assert np.percentile(s, 90) - np.percentile(s, 10) > 0.25  # spread over the range


@pytest.fixture(scope="module")
def stadium(body: BodyModel) -> tuple[SyntheticConfig, Scene]:
    cfg = SyntheticConfig(people=300, width=4096, height=2048, seed=4, preset="stadium_entrance")
    return cfg, layout(cfg, load_bank(), body)


def test_everyone_rests_on_what_their_support_says(
    stadium: tuple[SyntheticConfig, Scene], body: BodyModel
) -> None:
    _, scene = stadium
    verts, joints, _ = body.numpy_forward(scene.pose, scene.shape, scene.transl)
    low = scene.above_ground(verts).min(1) - scene.surface  # lowest vertex above its own surface, m
    kinds = set(scene.support.tolist())
    assert {"floor", "level_2", "seat", "bicycle", "airborne"} <= kinds
    (terrace,) = scene.levels
    assert 0.5 <= terrace <= 4.0
    on = np.isin(scene.support, ["floor", "level_2", "seat"])
    np.testing.assert_allclose(low[on], 0.0, atol=1e-4)
    np.testing.assert_allclose(scene.surface[scene.support == "level_2"], terrace)
    assert (scene.surface[scene.support == "floor"] == 0).all()
    air = scene.support == "airborne"
    assert (low[air] >= JUMP_HEIGHT_M[0] - 1e-6).all() and (low[air] <= JUMP_HEIGHT_M[1] + 1e-6).all()
    # riders: feet off the ground, ankles at the pedal axle; each has a bicycle, each bench sitter a bench
    ride = np.flatnonzero(scene.support == "bicycle")
    assert (low[ride] > 0.01).all()
    owners = {p.owner for p in scene.props}
    assert set(ride) <= owners
    seated_high = [i for i in np.flatnonzero(scene.support == "seat") if i in owners]
    assert seated_high, "no one sits on a bench"
    for prop in scene.props:
        if prop.owner in seated_high:  # the bench's top is under the pelvis, above the surface
            top = scene.above_ground(prop.verts).max() - scene.surface[prop.owner]
            pelvis = scene.above_ground(joints[prop.owner, 0]) - scene.surface[prop.owner]
            assert 0.25 < top < pelvis


def test_plaza_is_the_first_generation_world_draw_for_draw(body: BodyModel) -> None:
    """The plaza preset keeps earlier frames: same people, same places (seeded as before)."""
    cfg = SyntheticConfig(people=50, width=2048, height=1024, seed=9)
    a = layout(cfg, load_bank(), body)
    assert cfg.preset == "plaza" and PRESETS["plaza"].terrace is None
    assert (a.support == "floor").all() and (a.surface == 0).all() and a.props == () and a.levels == []
    # pinned from the first generation (RENDER_VERSION 2, commit 67f8a4f): first and last translations
    np.testing.assert_allclose(a.transl[0], [45.2059627479, -25.0380675559, 172.0319295218], atol=1e-6)
    np.testing.assert_allclose(a.transl[-1], [-36.9466704658, -21.9885510289, 150.9922516854], atol=1e-6)


def test_a_rendered_terrace_frame_has_its_truth_and_shows_the_terrace(
    tmp_path: Path, body: BodyModel
) -> None:
    cfg = SyntheticConfig(people=40, width=2048, height=1024, seed=4, preset="stadium_entrance")
    image, truth_path = synthesize(cfg, tmp_path, body, load_bank())
    truth = read_truth(truth_path)
    people = truth.frame_info[image.name]
    scene = layout(cfg, load_bank(), body)
    assert truth.levels == pytest.approx(scene.levels)
    assert [p.support for p in people] == scene.support.tolist()
    np.testing.assert_allclose([p.stature for p in people], body.statures(scene.shape), atol=1e-6)
    arr = truth.arrays()
    assert arr.support == tuple(scene.support.tolist()) and np.isfinite(arr.stature).all()
    # the terrace's wall shows: pixels on rays that meet its front face are darker than the floor's
    img = pyvips.Image.new_from_file(str(image)).numpy()
    ter = scene.terrace
    assert ter is not None
    cam = scene.camera
    # a point halfway up the wall, a metre inside its edge, and the floor 3 m in front of it
    wall = -scene.height * scene.up + ter.start * ter.fwd + ter.side * (ter.edge + 1.0) * ter.right
    wall = wall + 0.5 * ter.height * scene.up
    floor = wall - 0.5 * ter.height * scene.up - 3.0 * ter.fwd
    (wx, wy), (fx, fy) = cam.project(wall).astype(int), cam.project(floor).astype(int)
    assert 0 <= wx < cam.width and 0 <= wy < cam.height and 0 <= fx < cam.width and 0 <= fy < cam.height
    assert img[wy, wx].mean() < img[fy, fx].mean() - 10
