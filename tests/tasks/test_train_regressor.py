"""Synthetic training people for the embedded regressor: geometry of a sample, the held-out split,
and that training lowers the loss."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from tasks.models.body import BodyModel
from tasks.models.embedded import KeypointRegressor
from tasks.poses import load_bank
from tasks.regress import cam_crop_to_full, crop_params, project
from tasks.train_regressor import (
    LOSS_WEIGHTS,
    LSP14,
    TRAIN_ACTIVITIES,
    inputs,
    losses,
    pa_mpjpe_mm,
    predict,
    sample,
    split_of,
    true_cam,
)


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.load("builtin:neutral")


@pytest.fixture(scope="module")
def poses() -> np.ndarray:
    bank = load_bank()
    return bank.poses[~split_of(bank.clip)]


def test_held_out_split_is_by_clip() -> None:
    bank = load_bank()
    held = split_of(bank.clip)
    assert 0.03 < held.mean() < 0.3
    assert not set(bank.clip[held]) & set(bank.clip[~held])


def test_pa_mpjpe_ignores_a_similarity_and_lsp14_leaves_hands_and_feet_out(body: BodyModel) -> None:
    _, joints, _ = body.numpy_forward(np.zeros((1, 72)), np.zeros((1, 10)))
    true = joints[0]
    r = roma.rotvec_to_rotmat(torch.tensor([0.3, -1.0, 0.2], dtype=torch.float64)).numpy()
    moved = 1.3 * true @ r.T + np.array([0.5, -2.0, 10.0])  # metres
    assert pa_mpjpe_mm(moved, true) == pytest.approx(0.0, abs=1e-6)
    bent = true.copy()
    bent[[10, 11, 22, 23]] += [0.0, 0.0, 0.05]  # toes and hands 5 cm forward
    assert pa_mpjpe_mm(bent, true) > 5.0
    assert set(LSP14).isdisjoint({0, 3, 6, 9, 10, 11, 13, 14, 22, 23}) and len(set(LSP14)) == 14
    assert pa_mpjpe_mm(bent[list(LSP14)], true[list(LSP14)]) == pytest.approx(0.0, abs=1e-6)


def test_a_clean_sample_is_geometrically_consistent(body: BodyModel, poses: np.ndarray) -> None:
    batch = sample(np.random.default_rng(0), 64, poses, body, noise=False)
    pp = batch.image_wh / 2
    kp = project(batch.coco, batch.focal, pp)
    assert torch.allclose(kp, batch.keypoints[..., :2], atol=1e-2)  # noise-free keypoints = projection
    box = batch.boxes
    inside = (kp[..., 0] >= box[:, None, 0] - 1) & (kp[..., 0] <= box[:, None, 2] + 1)
    inside &= (kp[..., 1] >= box[:, None, 1] - 1) & (kp[..., 1] <= box[:, None, 3] + 1)
    assert inside.all()  # the box is the mesh's, so every keypoint lies in it
    _, b = crop_params(box.numpy())
    assert b.min() > 20 and b.max() < 1300  # crop heights span the 24-1000 px range, roughly
    # upright people: the head is above the pelvis along the image's up direction for most samples
    head_up = (batch.joints[:, 15, 1] < batch.joints[:, 0, 1]).float().mean()
    assert head_up > 0.8
    # the true crop camera maps back to the true translation through eq. 1
    x = inputs(batch)
    cam = true_cam(batch, x)
    assert torch.allclose(cam_crop_to_full(cam, x.centre, x.b, batch.focal, pp), batch.transl, rtol=1e-4)
    assert (cam[:, 0] > 0.5).all() and (cam[:, 0] < 2.0).all()  # the person fills the crop's height
    # The moved mesh, joints and COCO-17 (one forward pass plus transl) match a forward pass with
    # transl, to float32 rounding (the pose here went through rotation matrices and back): the
    # training data do not depend on that shortcut.
    pose = roma.rotmat_to_rotvec(batch.rotmat).reshape(-1, 72).numpy()
    verts, joints, coco = body.numpy_forward(pose, batch.betas.numpy(), batch.transl.numpy())
    tol = 1e-5 * float(batch.transl.abs().max())  # float32 rounding at the people's distance
    for got, want in ((batch.verts, verts), (batch.joints, joints), (batch.coco, coco)):
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=tol)


def test_the_training_mix_holds_the_activities_and_children_it_is_asked_for(
    body: BodyModel, poses: np.ndarray
) -> None:
    """Shares 0 leave the people as they were (the shipped weights' command reproduces); `only`
    makes everyone a rider (knees bent: thigh and shin out of line) or a child (1.05-1.5 m)."""
    plain = sample(np.random.default_rng(3), 64, poses, body)
    same = sample(np.random.default_rng(3), 64, poses, body, activities=0.0, children=0.0)
    assert torch.equal(plain.keypoints, same.keypoints) and torch.equal(plain.betas, same.betas)
    mixed = sample(np.random.default_rng(3), 400, poses, body, activities=0.5, children=0.25, noise=False)
    statures = body.statures(mixed.betas.numpy())
    assert 0.15 < (statures < 1.5).mean() < 0.35  # the children, and a few short adults
    riders = sample(np.random.default_rng(4), 64, poses, body, only="ride", noise=False)
    j = riders.joints.numpy()
    thigh, shin = j[:, 4] - j[:, 1], j[:, 7] - j[:, 4]  # left hip -> knee -> ankle
    cos = (thigh * shin).sum(1) / np.linalg.norm(thigh, axis=1) / np.linalg.norm(shin, axis=1)
    assert (np.degrees(np.arccos(cos)) > 30).all()
    kids = sample(np.random.default_rng(5), 64, poses, body, only="child", noise=False)
    assert (body.statures(kids.betas.numpy()) <= 1.51).all()
    assert set(TRAIN_ACTIVITIES) == {"bench", "ground_sit", "crouch", "ride", "jump"}


def test_noise_drops_and_jitters_keypoints(body: BodyModel, poses: np.ndarray) -> None:
    clean = sample(np.random.default_rng(1), 200, poses, body, noise=False)
    noisy = sample(np.random.default_rng(1), 200, poses, body, noise=True)
    dropped = noisy.keypoints[..., 2] == 0
    assert 0.05 < dropped.float().mean() < 0.15
    err = (noisy.keypoints[..., :2] - clean.keypoints[..., :2]).norm(dim=-1)[~dropped]
    h = (clean.boxes[:, 3] - clean.boxes[:, 1])[:, None].expand(-1, 17)[~dropped]
    assert 0.01 < float((err / h).median()) < 0.08


def test_a_few_steps_of_training_lower_the_loss(body: BodyModel, poses: np.ndarray) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    batch = sample(rng, 64, poses, body)
    x = inputs(batch)
    model = KeypointRegressor(width=128)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def total() -> torch.Tensor:
        terms = losses(batch, x, predict(model, body, batch, x))
        return sum(LOSS_WEIGHTS[k] * v for k, v in terms.items())  # type: ignore[return-value]

    model.eval()
    with torch.no_grad():
        before = float(total())
    model.train()
    for _ in range(40):
        opt.zero_grad()
        total().backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = float(total())
    assert after < 0.8 * before


def test_training_crops_show_the_person_where_its_keypoints_are(body: BodyModel, poses: np.ndarray) -> None:
    from tasks.train_regressor import render_crops

    batch = sample(np.random.default_rng(3), 6, poses, body, b_range=(150.0, 400.0), noise=False)
    green = np.zeros((300, 400, 3), np.uint8)
    green[..., 1] = 255  # no clothes, skin or hair colour is pure green
    crops = render_crops(np.random.default_rng(0), batch, body, [green])
    again = render_crops(np.random.default_rng(0), batch, body, [green])
    assert crops.shape == (6, 256, 192, 3) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops, again)
    x = inputs(batch)
    for crop, kp in zip(crops, x.keypoints.numpy(), strict=True):
        corner = np.median(crop[:8, :8].reshape(-1, 3), axis=0)
        person = np.abs(crop.astype(float) - corner).max(-1) > 60
        # keypoints in box units -> crop pixels (the crop spans 0.75 b x b around the centre)
        u = np.clip(((kp[:, 0] + 0.375) * 256).astype(int), 0, 191)
        v = np.clip(((kp[:, 1] + 0.5) * 256).astype(int), 0, 255)
        near = [person[max(y - 4, 0) : y + 5, max(x - 4, 0) : x + 5].any() for x, y in zip(u, v, strict=True)]
        assert np.mean(near) > 0.8  # the drawn body covers its own joints
        assert 0.03 < person.mean() < 0.6  # a person, not the whole crop


def test_image_mode_starts_as_the_keypoints_network(body: BodyModel, poses: np.ndarray) -> None:
    from tasks import InputError
    from tasks.models.embedded import BUILTIN_KP, ImageRegressor, load_embedded
    from tasks.train_regressor import TrainConfig, make_model

    model = make_model(TrainConfig(mode="image", init=BUILTIN_KP)).eval()
    assert isinstance(model, ImageRegressor)
    batch = sample(np.random.default_rng(5), 8, poses, body)
    x = inputs(batch)
    crops = np.random.default_rng(0).integers(0, 256, (8, 256, 192, 3), dtype=np.uint8)
    with torch.no_grad():
        a = predict(model, body, batch, x, crops)
        b = predict(load_embedded(BUILTIN_KP), body, batch, x)
    torch.testing.assert_close(a.rotmat, b.rotmat)
    torch.testing.assert_close(a.cam, b.cam)
    with pytest.raises(InputError, match="cannot start a image-mode regressor of width 64"):
        make_model(TrainConfig(mode="image", width=64, init=BUILTIN_KP))
    with pytest.raises(InputError, match="unknown regressor mode"):
        make_model(TrainConfig(mode="video"))
