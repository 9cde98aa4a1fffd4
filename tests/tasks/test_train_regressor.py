"""Synthetic training people for the embedded regressor: geometry of a sample, the held-out split,
and that training lowers the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tasks.models.body import BodyModel
from tasks.models.embedded import KeypointRegressor
from tasks.poses import load_bank
from tasks.regress import cam_crop_to_full, crop_params, project
from tasks.train_regressor import (
    LOSS_WEIGHTS,
    inputs,
    losses,
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
