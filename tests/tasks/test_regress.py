"""CLIFF conventions (reference/method.md section 3) against hand-computed values, and the batched
regression over a frame's boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tasks.pose2d import crop_from_levels
from tasks.regress import (
    CROP_SIZE,
    bbox_info,
    cam_crop_to_full,
    cliff_affine,
    crop_params,
    default_focal,
    project,
    regress,
    to_crop_units,
)

W, H = 1000.0, 500.0
F = math.hypot(W, H)  # 1118.034 px


def test_crop_rule_is_cliffs() -> None:
    centre, b = crop_params(np.array([[100, 100, 160, 300], [0, 0, 300, 100]]))
    assert centre.tolist() == [[130, 200], [150, 50]]
    # tall box: height 200 wins over 60 * 4/3; wide box: 300 * 4/3 = 400 wins; both x 1.1
    assert b == pytest.approx([220.0, 440.0])
    a = cliff_affine(np.array([100, 100, 160, 300]))
    assert 256 / a[0, 0] == pytest.approx(220.0)  # the crop is b tall in image pixels
    assert a[0] @ [130, 200, 1] == pytest.approx(96.0) and a[1] @ [130, 200, 1] == pytest.approx(128.0)
    assert default_focal(W, H) == pytest.approx(1118.034, abs=1e-3)


def test_bbox_info_hand_computed() -> None:
    info = bbox_info(
        torch.tensor([[700.0, 300.0]]),
        torch.tensor([200.0]),
        torch.tensor([F]),
        torch.tensor([[W / 2, H / 2]]),
    )
    expected = [200 / F * 2.8, 50 / F * 2.8, (200 - 0.24 * F) / (0.06 * F)]
    assert info[0].tolist() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx([0.50088, 0.12522, -1.01858], abs=1e-5)


def test_cam_crop_to_full_hand_computed() -> None:
    centre, b, f, wh = (
        torch.tensor([[700.0, 300.0]]),
        torch.tensor([200.0]),
        torch.tensor([F]),
        torch.tensor([[W / 2, H / 2]]),
    )
    t = cam_crop_to_full(torch.tensor([[0.5, 0.1, -0.2]]), centre, b, f, wh)[0]
    # b s = 100: tz = 2 f / 100, tx = 0.1 + 2 (700 - 500) / 100, ty = -0.2 + 2 (300 - 250) / 100
    assert t.tolist() == pytest.approx([4.1, 0.8, 2 * F / 100], rel=1e-6)
    # The body origin lands where the crop camera puts it: crop centre + (b s / 2) (tx, ty).
    uv = project(t.view(1, 1, 3), f, wh)[0, 0]
    assert uv.tolist() == pytest.approx([700 + 50 * 0.1, 300 - 50 * 0.2], rel=1e-6)
    # and in box-normalised units that is (s tx, s ty) / 2
    assert to_crop_units(uv.view(1, 1, 2), centre, b)[0, 0].tolist() == pytest.approx([0.025, -0.05])


class _Recorder:
    """A Regressor that reports what it was given (crop centre colour, keypoints, bbox info)."""

    uses_image = True
    name, sha256 = "recorder", ""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def predict(self, crops, keypoints, info, b):  # type: ignore[no-untyped-def]
        n = len(info)
        self.seen.append(crops[:, :, 128, 96].clone())
        rot = torch.eye(3).expand(n, 24, 3, 3).clone()
        cam = torch.stack([torch.full((n,), 0.5), keypoints[:, 0, 0], keypoints[:, 0, 1]], 1)
        return rot, info[:, :1].expand(n, 10).clone(), cam


def test_regress_keeps_the_order_of_boxes_and_reads_full_resolution() -> None:
    img = np.zeros((512, 1024, 3), np.uint8)
    boxes = np.array([[800, 300, 840, 400], [100, 50, 140, 150], [500, 100, 520, 160]], float)
    for i, bx in enumerate(boxes):
        x0, y0, x1, y1 = bx.astype(int)
        img[y0:y1, x0:x1] = 60 * (i + 1)
    levels = [img, img[::2, ::2]]
    kp = np.zeros((3, 17, 3), np.float32)
    kp[:, 0] = [[830, 320, 1], [110, 80, 1], [505, 130, 1]]
    model = _Recorder()
    out = regress(levels, boxes, kp, model, (1024, 512), batch=2)
    centre, b = crop_params(boxes)
    assert out.b == pytest.approx(b)
    # keypoints given in (x - c) / b and returned through the cam's tx, ty
    assert out.cam[:, 1] == pytest.approx((kp[:, 0, 0] - centre[:, 0]) / b, rel=1e-5)
    # bbox info, row by row in input order
    info = bbox_info(
        torch.tensor(centre).float(),
        torch.tensor(b).float(),
        torch.full((3,), math.hypot(1024, 512)),
        torch.tensor([[512.0, 256.0]]).expand(3, 2),
    )
    assert out.betas[:, 0] == pytest.approx(info[:, 0].numpy(), rel=1e-5)
    # crop centres carry each box's own colour (ImageNet-normalised red channel)
    seen = torch.cat(model.seen)
    reds = sorted(float(v) for v in seen[:, 0])
    assert reds == pytest.approx(sorted((60 * (i + 1) / 255 - 0.485) / 0.229 for i in range(3)), abs=0.02)
    assert out.pose.shape == (3, 72) and np.allclose(out.pose, 0, atol=1e-6)
    assert out.transl[:, 2] == pytest.approx(2 * math.hypot(1024, 512) / (b * 0.5))


def test_crop_from_levels_matches_cliff_affine() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (600, 800, 3), np.uint8)
    box = np.array([300.0, 100.0, 380.0, 400.0])
    _, affine, _ = crop_from_levels([img], box, CROP_SIZE, 1.1)
    assert np.allclose(affine, cliff_affine(box))


def test_non_finite_network_output_is_refused_in_one_line() -> None:
    class _Broken(_Recorder):
        name = "broken"

        def predict(self, crops, keypoints, info, b):  # type: ignore[no-untyped-def]
            rot, betas, cam = super().predict(crops, keypoints, info, b)
            cam[1, 0] = float("nan")
            return rot, betas, cam

    img = np.zeros((512, 1024, 3), np.uint8)
    boxes = np.array([[800, 300, 840, 400], [100, 50, 140, 150]], float)
    with pytest.raises(ValueError, match=r"^the regressor broken gave non-finite values for 1 of 2 people$"):
        regress([img], boxes, np.zeros((2, 17, 3), np.float32), _Broken(), (1024, 512))


def test_frame_smpl_poses_the_people_and_says_how_they_fit() -> None:
    """The regress stage's table of a synthetic frame: the body model's joints for the network's
    parameters, each person's keypoint fit and distance from the crowd's ground, the camera kept."""
    import json

    from schemas.scene import SyntheticConfig
    from tasks.camera import FrameCamera
    from tasks.models.body import BodyModel
    from tasks.models.registry import load_regressor
    from tasks.poses import load_bank
    from tasks.regress import Regression, frame_smpl
    from tasks.synth import keypoint_frame

    body = BodyModel.load("builtin:neutral")
    f = keypoint_frame(SyntheticConfig(people=60, width=4096, height=2048, seed=2), load_bank(), body)
    wh, pp = (f.camera.width, f.camera.height), (f.camera.width / 2, f.camera.height / 2)
    model = load_regressor("embedded")
    ids = np.arange(60) + 100
    parts = [
        regress(None, f.boxes[s], f.kp[s], model, wh, f.camera.f, pp) for s in (slice(0, 25), slice(25, 60))
    ]
    parts = [
        Regression(**{**p.__dict__, "regressor": "embedded:x", "regressor_sha256": "abc"}) for p in parts
    ]
    camera = FrameCamera(f.camera.f, *pp, "given")
    smpl = frame_smpl(parts, ids, f.boxes, f.kp, "builtin:neutral", camera)
    rows = smpl.rows
    assert len(rows) == 60 and rows.det_id.tolist() == ids.tolist() and not rows.finetuned.any()
    whole = Regression.concat(parts)
    _, joints, _ = body.numpy_forward(whole.pose, whole.betas, whole.transl)
    np.testing.assert_allclose(rows.joints3d, joints, atol=1e-5)
    np.testing.assert_allclose(rows.body_pose[30], whole.pose[30, 3:])  # person 30 from the second batch
    assert (rows.scale == 1).all() and (rows.cx == pp[0]).all()
    np.testing.assert_allclose(rows.focal, f.camera.f, rtol=1e-6)  # float32 on the way
    assert np.median(rows.keypoint_error) < 0.002  # the shipped regressor fits its keypoints (box units)
    # ground_distance: the feet (ankle midpoints) above the plane of the metadata, along its up (y < 0)
    plane = np.array(json.loads(smpl.metadata["ground_plane"]))
    feet = (rows.joints3d[:, 7] + rows.joints3d[:, 8]) / 2
    np.testing.assert_allclose(rows.ground_distance, feet @ plane[:3] + plane[3], atol=1e-4)
    assert (
        plane[1] < -0.9 and abs(np.median(rows.ground_distance)) < 0.05
    )  # a robust plane: up, through the feet
    assert json.loads(smpl.metadata["camera"])["focal_source"] == "given"
    assert smpl.metadata["regressor"] == "embedded:x" and smpl.metadata["body_model"] == body.name
