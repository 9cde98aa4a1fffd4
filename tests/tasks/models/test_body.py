"""The shipped body model follows SMPL's file format and conventions; user SMPL files load the same way."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import smplx
import torch

from tasks import InputError
from tasks.models.body import (
    NEUTRAL_PATH,
    NEUTRAL_SHA256,
    SMPL_FACE_VERTICES,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    BodyModel,
    _load_cached,
    _read_model_file,
)

J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}


@pytest.fixture(scope="module")
def neutral() -> BodyModel:
    return BodyModel.load("builtin:neutral")


def _pose(**joints: tuple[float, float, float]) -> torch.Tensor:
    """(1, 72) axis-angle with the given joints set, e.g. l_knee=(pi/2, 0, 0)."""
    p = torch.zeros(1, 72)
    for name, aa in joints.items():
        p[0, 3 * J[name] : 3 * J[name] + 3] = torch.tensor(aa)
    return p


def _run(model: BodyModel, pose: torch.Tensor, betas: torch.Tensor | None = None):
    betas = torch.zeros(1, 10) if betas is None else betas
    with torch.no_grad():
        return model(pose[:, :3], pose[:, 3:], betas)


def test_plain_smplx_loads_the_shipped_file_and_gives_smpl_joints() -> None:
    with open(NEUTRAL_PATH, "rb") as f:
        data = pickle.load(f)
    assert data["shapedirs"].shape[1:] == (3, 10)
    assert data["posedirs"].shape[1:] == (3, 207)
    assert data["J_regressor"].shape == (24, data["v_template"].shape[0])
    assert data["weights"].shape == (data["v_template"].shape[0], 24)
    np.testing.assert_allclose(data["weights"].sum(1), 1.0, atol=1e-5)
    model = smplx.SMPL(model_path=str(NEUTRAL_PATH), vertex_ids=data["vertex_ids"])
    assert model.parents.tolist() == SMPL_PARENTS
    out = model(betas=torch.zeros(1, 10))
    assert out.joints.shape == (1, 24 + 21, 3)  # SMPL's 24, then smplx's 21 vertex joints


def test_rest_pose_is_smpl_t_pose_y_up_facing_plus_z_in_metres(neutral: BodyModel) -> None:
    out = _run(neutral, torch.zeros(1, 72))
    j, v, coco = out.joints[0].numpy(), out.vertices[0].numpy(), out.coco17[0].numpy()
    np.testing.assert_allclose(j[J["pelvis"]], [0.0, -0.22, 0.0], atol=0.02)
    assert j[J["head"], 1] > j[J["neck"], 1] > j[J["pelvis"], 1] > j[J["l_knee"], 1] > j[J["l_ankle"], 1]
    assert j[J["l_hip"], 0] > 0.05 and j[J["l_shoulder"], 0] > 0.1  # subject's left at +x
    assert j[J["r_hip"], 0] < -0.05 and j[J["r_wrist"], 0] < -0.5
    assert coco[0, 2] > j[J["head"], 2] + 0.05  # the nose is in front: facing +z
    assert coco[15, 2] < v[:, 2].max() - 0.1  # and the toes stick out further than the ankle
    for side in "lr":  # T-pose: straight horizontal arms, legs straight down
        assert abs(j[J[f"{side}_wrist"], 1] - j[J[f"{side}_shoulder"], 1]) < 0.03
        assert abs(j[J[f"{side}_ankle"], 0] - j[J[f"{side}_hip"], 0]) < 0.03
    stature = v[:, 1].max() - v[:, 1].min()
    assert 1.6 < stature < 1.85
    assert v[neutral.head_top, 1] == pytest.approx(v[:, 1].max())


def test_pose_parameters_mean_smpl_joint_rotations(neutral: BodyModel) -> None:
    rest = _run(neutral, torch.zeros(1, 72)).joints[0].numpy()
    # Knee flexion is a positive rotation about x: the ankle swings backwards (-z) and up.
    bent = _run(neutral, _pose(l_knee=(math.pi / 2, 0, 0))).joints[0].numpy()
    shank = rest[J["l_knee"], 1] - rest[J["l_ankle"], 1]
    assert bent[J["l_ankle"], 2] - bent[J["l_knee"], 2] == pytest.approx(-shank, abs=0.01)
    assert bent[J["l_ankle"], 1] == pytest.approx(rest[J["l_knee"], 1], abs=0.01)
    np.testing.assert_allclose(bent[J["r_ankle"]], rest[J["r_ankle"]], atol=1e-6)
    # Arms down from the T-pose: left shoulder -90 degrees about z, right shoulder +90.
    down = (
        _run(neutral, _pose(l_shoulder=(0, 0, -math.pi / 2), r_shoulder=(0, 0, math.pi / 2)))
        .joints[0]
        .numpy()
    )
    for side in "lr":
        assert down[J[f"{side}_wrist"], 1] < rest[J[f"{side}_shoulder"], 1] - 0.4
        assert abs(down[J[f"{side}_wrist"], 0] - rest[J[f"{side}_shoulder"], 0]) < 0.03
    # Global orient of pi about y turns the body to face -z.
    turned = _run(neutral, _pose(pelvis=(0, math.pi, 0)))
    assert turned.coco17[0, 0, 2] < turned.joints[0, J["head"], 2] - 0.05


def test_first_beta_is_height_and_keypoints_follow_shape(neutral: BodyModel) -> None:
    tall, short = torch.zeros(1, 10), torch.zeros(1, 10)
    tall[0, 0], short[0, 0] = 2.0, -2.0
    v_tall = _run(neutral, torch.zeros(1, 72), tall).vertices[0]
    v_short = _run(neutral, torch.zeros(1, 72), short).vertices[0]
    height = [float(v[:, 1].max() - v[:, 1].min()) for v in (v_tall, v_short)]
    assert height[0] - height[1] > 0.3
    out = _run(neutral, torch.zeros(1, 72), tall)
    # COCO ankles sit at the SMPL ankles, COCO hips near the hip joints, for any shape.
    assert torch.linalg.norm(out.coco17[0, 15] - out.joints[0, J["l_ankle"]]) < 0.04
    assert torch.linalg.norm(out.coco17[0, 11] - out.joints[0, J["l_hip"]]) < 0.06


def test_joints_numpy_applies_translation(neutral: BodyModel) -> None:
    pose, shape = np.zeros((3, 72)), np.zeros((3, 10))
    j0, c0 = neutral.joints_numpy(pose, shape)
    j1, c1 = neutral.joints_numpy(pose, shape, transl=np.tile([1.0, -2.0, 10.0], (3, 1)))
    np.testing.assert_allclose(j1 - j0, np.broadcast_to([1.0, -2.0, 10.0], j0.shape), atol=1e-5)
    np.testing.assert_allclose(c1 - c0, np.broadcast_to([1.0, -2.0, 10.0], c0.shape), atol=1e-5)


def test_numpy_forward_scales_the_body_before_translating_it(neutral: BodyModel) -> None:
    rng = np.random.default_rng(0)
    pose, shape = rng.normal(0, 0.2, (2, 72)), rng.normal(0, 1, (2, 10))
    transl, scale = np.array([[0.5, 1.0, 20.0], [-1.0, 0.0, 40.0]]), np.array([0.8, 1.5])
    raw = neutral.numpy_forward(pose, shape)
    got = neutral.numpy_forward(pose, shape, transl, scale=scale)
    for r, g in zip(raw, got, strict=True):  # vertices, joints, coco17
        np.testing.assert_allclose(g, scale[:, None, None] * r + transl[:, None, :], atol=1e-4)
    # scale 1 is the plain translated body
    np.testing.assert_allclose(
        neutral.numpy_forward(pose, shape, transl, scale=np.ones(2))[1],
        neutral.numpy_forward(pose, shape, transl)[1], atol=1e-5,
    )  # fmt: skip


def _smpl_like_file(tmp_path: Path, suffix: str) -> Path:
    """An SMPL-format model with SMPL's 6890 vertices (the shipped mesh's vertices repeated)."""
    with open(NEUTRAL_PATH, "rb") as f:
        d = pickle.load(f)
    idx = np.arange(6890) % d["v_template"].shape[0]
    data = {
        "v_template": d["v_template"][idx],
        "shapedirs": d["shapedirs"][idx],
        "posedirs": np.zeros((6890, 3, 207), np.float32),
        "J_regressor": d["J_regressor"][:, idx] * (d["v_template"].shape[0] / 6890),
        "weights": d["weights"][idx],
        "kintree_table": d["kintree_table"],
        "f": d["f"],
    }
    path = tmp_path / f"SMPL_NEUTRAL{suffix}"
    if suffix == ".npz":
        np.savez(path, **data)
    else:
        with open(path, "wb") as f:
            pickle.dump(data, f)
    return path


@pytest.mark.parametrize("suffix", [".pkl", ".npz"])
def test_user_smpl_file_uses_smpl_vertex_ids_for_the_face(tmp_path: Path, suffix: str) -> None:
    model = BodyModel.load(_smpl_like_file(tmp_path, suffix))
    assert not model.builtin and model.n_vertices == 6890
    out = _run(model, torch.zeros(1, 72))
    assert torch.equal(out.coco17[0, :5], out.vertices[0, SMPL_FACE_VERTICES])
    assert torch.equal(out.coco17[0, 5], out.joints[0, J["l_shoulder"]])
    assert torch.equal(out.coco17[0, 16], out.joints[0, J["r_ankle"]])


def test_bad_model_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        _read_model_file(tmp_path / "nope.pkl")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"this is not a pickle")
    with pytest.raises(InputError, match="not an SMPL model file"):
        _read_model_file(junk)
    partial = tmp_path / "partial.pkl"
    partial.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}))
    with pytest.raises(InputError, match="missing shapedirs"):
        _read_model_file(partial)
    with pytest.raises(InputError, match="unknown built-in"):
        BodyModel.load("builtin:smplx")


def test_damaged_builtin_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "neutral_body.pkl"
    copy.write_bytes(NEUTRAL_PATH.read_bytes()[:-1] + b"\x00")
    monkeypatch.setattr("tasks.models.body.NEUTRAL_PATH", copy)
    _load_cached.cache_clear()
    try:
        with pytest.raises(InputError, match=f"damaged.*expected {NEUTRAL_SHA256}"):
            BodyModel.load("builtin:neutral")
    finally:
        _load_cached.cache_clear()
