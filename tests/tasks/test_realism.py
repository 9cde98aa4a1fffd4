"""Rendered people look like people to the shipped COCO-trained networks (issue #3's realism target)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyvips

from schemas.scene import SyntheticConfig
from schemas.truth import read_truth
from tasks.models.body import BodyModel
from tasks.models.movenet import MoveNet
from tasks.models.yolox_onnx import YoloxOnnx
from tasks.poses import load_bank
from tasks.realism import measure
from tasks.synth import synthesize


def test_yolox_finds_and_movenet_poses_the_rendered_people(tmp_path: Path) -> None:
    cfg = SyntheticConfig(people=120, width=4096, height=2048, seed=3)
    image, truth = synthesize(cfg, tmp_path, BodyModel.load("builtin:neutral"), load_bank())
    rgb = pyvips.Image.new_from_file(str(image)).numpy()
    r = measure(rgb, read_truth(truth), YoloxOnnx.load(), MoveNet.load())
    assert r.people == 120 and r.tall >= 30
    # Measured 0.93 on this frame (0.92-0.95 over seeds 2-4); the target is 0.8.
    assert r.recall_tall >= 0.8
    # MoveNet OKS on these renders 0.74 (mean); on the real COCO people of tests/data/real about 0.7.
    assert r.oks_mean >= 0.6 and r.oks_ge_050 >= 0.7
    assert r.unmatched < 0.3 * r.detections
    assert np.isfinite(r.recall_small)


def test_recall_by_height_counts_each_band() -> None:
    from tasks.realism import recall_by_height

    gt = np.array([[0, 0, 10, 50], [100, 0, 110, 150], [200, 0, 220, 300.0]])
    pred = np.array([[0, 0, 10, 50, 0.9], [200, 0, 220, 300, 0.8]])
    got = recall_by_height(pred, gt, [(0, 100), (100, 200), (200, float("inf")), (1000, 2000)])
    assert got == {"0-100": (1, 1.0), "100-200": (1, 0.0), "200-inf": (1, 1.0), "1000-2000": (0, None)}


def test_crowd_pose_errors_tell_own_skeletons_from_a_neighbours() -> None:
    """Exact keypoints score OKS 1 with no error; giving each overlapped person the keypoints of a
    person whose box covers theirs makes exactly those skeletons 'mostly another's'."""
    from tasks.boxes import coverage
    from tasks.realism import crowd_pose_errors
    from tasks.synth import Rendered, layout, truth

    body = BodyModel.load("builtin:neutral")
    cfg = SyntheticConfig(people=80, width=2048, height=1024, seed=5, min_gap=0.4)
    scene = layout(cfg, load_bank(), body)
    geometry = body.numpy_forward(scene.pose, scene.shape, scene.transl)
    shown = Rendered(visibility=np.ones(80), keypoint_occluded=np.zeros((80, 17), bool))
    t = truth(scene, body, geometry, shown, "x.jpg")
    a = t.arrays()
    exact = crowd_pose_errors(a.keypoints.copy(), t)
    assert exact["all"]["oks"] == pytest.approx(1.0) and exact["all"]["mostly_another"] == 0.0
    assert exact["all"]["joint_err"] == pytest.approx(0.0)
    boxes = a.bbox
    covered = coverage(boxes, boxes)
    np.fill_diagonal(covered, 0.0)
    swapped, moved = a.keypoints.copy(), []
    for i in range(len(boxes)):
        share = covered[i]
        if share.max() >= 0.2:
            swapped[i] = a.keypoints[int(share.argmax())]
            moved.append(i)
    assert len(moved) >= 5
    r = crowd_pose_errors(swapped, t)
    assert r["all"]["mostly_another"] == pytest.approx(len(moved) / len(boxes))
    assert r["overlaps"]["0-1"]["mostly_another"] == 0.0 and r["overlaps"]["0-1"]["oks"] == pytest.approx(1.0)
    assert r["all"]["oks"] < 1.0


class _BrightestPixel:
    """A pose 'network' that puts all 17 keypoints on the brightest pixel of its crop."""

    size = 64

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        out = np.zeros((len(crops), 17, 3))
        for i, c in enumerate(crops):
            y, x = np.unravel_index(np.argmax(c.sum(-1)), c.shape[:2])
            out[i, :, :2], out[i, :, 2] = (x + 0.5, y + 0.5), 1.0
        return out


def test_pose_oks_paints_out_the_other_boxes_when_given_them() -> None:
    from tasks.realism import pose_oks

    image = np.full((200, 300, 3), 40, np.uint8)
    image[98:102, 98:102] = 200  # the person's own bright spot, at its box centre
    image[98:102, 142:146] = 255  # a brighter neighbour, inside the crop but outside the box
    own = np.array([[70.0, 50.0, 130.0, 150.0]])
    neighbour = np.array([[135.0, 60.0, 170.0, 140.0]])
    gt = np.full((1, 17, 2), 100.0)
    vis = np.full((1, 17), 2)
    alone = pose_oks(image, own, gt, vis, _BrightestPixel())
    masked = pose_oks(image, own, gt, vis, _BrightestPixel(), context=np.vstack([own, neighbour]))
    # Unmasked the keypoints land on the neighbour, 44 px off; masked on the person itself.
    assert alone[0] < 0.2 and masked[0] > 0.9
