"""MoveNet Lightning on a real annotated person: keypoints where the human annotator put them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks import InputError
from tasks.evaluate import oks_matrix
from tasks.models.movenet import MoveNet
from tasks.pose2d import crop, to_image


def test_keypoints_on_a_real_coco_person(coco_person: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    rgb, box, gt = coco_person
    model = MoveNet.load()
    c, a = crop(rgb, box, model.size)
    kp = to_image(model(c[None])[0], a)
    assert kp.shape == (17, 3)
    visible = gt[:, 2] > 0
    oks = oks_matrix(
        kp[None, :, :2],
        np.where(visible[:, None], gt[:, :2], np.nan)[None],
        np.array([np.prod(box[2:] - box[:2])]),
    )
    assert oks[0, 0] > 0.6
    # Left and right are the person's: COCO's left shoulder is annotated where MoveNet puts its own.
    err = np.linalg.norm(kp[[5, 6], :2] - gt[[5, 6], :2], axis=1)
    assert (err < 0.1 * (box[3] - box[1])).all()


def test_input_checks(tmp_path: Path) -> None:
    model = MoveNet.load()
    with pytest.raises(ValueError, match="uint8"):
        model(np.zeros((1, 192, 192, 3), np.float32))
    with pytest.raises(InputError, match="unknown built-in pose model"):
        MoveNet.load("builtin:movenet-thunder")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer" * 10)
    with pytest.raises(InputError, match="cannot load MoveNet"):
        MoveNet.load(str(junk))


def test_blazepose_on_the_same_real_person(coco_person: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    from tasks.models.blazepose import BlazePose

    rgb, box, gt = coco_person
    model = BlazePose.load()
    c, a = crop(rgb, box, model.size)
    kp = to_image(model(c[None])[0], a)
    visible = gt[:, 2] > 0
    area = np.array([np.prod(box[2:] - box[:2])])
    oks = oks_matrix(kp[None, :, :2], np.where(visible[:, None], gt[:, :2], np.nan)[None], area)
    assert oks[0, 0] > 0.6
    assert (kp[:, 2] >= 0).all() and (kp[:, 2] <= 1).all() and np.median(kp[:, 2]) > 0.5
    err = np.linalg.norm(kp[[5, 6], :2] - gt[[5, 6], :2], axis=1)
    assert (err < 0.1 * (box[3] - box[1])).all()  # left is the person's left, as in COCO
