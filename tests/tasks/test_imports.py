"""Boxes and keypoints imported from other tools' files land in full-resolution pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tasks import InputError
from tasks.imports import read_boxes
from tests.conftest import COCO_PHOTO


def test_coco_dataset_json_gives_the_annotated_person(tmp_path: Path) -> None:
    got = read_boxes(COCO_PHOTO.with_suffix(".json"), "coco-results")
    ann = json.loads(COCO_PHOTO.with_suffix(".json").read_text())["annotations"][0]
    x, y, w, h = ann["bbox"]
    imp = got["coco_000000000785"]
    np.testing.assert_allclose(imp.boxes, [[x, y, x + w, y + h, 1.0]])
    kp = np.asarray(ann["keypoints"], float).reshape(17, 3)
    assert imp.keypoints is not None
    np.testing.assert_allclose(imp.keypoints[0, :, :2], kp[:, :2])
    np.testing.assert_array_equal(imp.keypoints[0, :, 2], (kp[:, 2] > 0).astype(float))


def test_coco_results_by_number_need_the_image_list(tmp_path: Path) -> None:
    res = tmp_path / "res.json"
    person = {"image_id": 785, "category_id": 1, "bbox": [1, 2, 10, 20], "score": 0.7}
    car = {"image_id": 785, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.9}
    res.write_text(json.dumps([person, car]))
    with pytest.raises(InputError, match="image_id 785 is a number"):
        read_boxes(res, "coco-results")
    got = read_boxes(res, "coco-results", images=COCO_PHOTO.with_suffix(".json"))
    np.testing.assert_allclose(got["coco_000000000785"].boxes, [[1, 2, 11, 22, 0.7]])  # the car is left out
    assert got["coco_000000000785"].keypoints is None


def test_largecrowd_keypoints_are_unnormalised(tmp_path: Path) -> None:
    doc = {
        "image_shape": {"height": 100, "width": 200},
        "frame_info": {"a/b/frame_1.jpg": [{"bbox": [10, 20, 30, 90], "keypoints": [[0.5, 0.25, 2]] * 17}]},
    }
    (tmp_path / "t.json").write_text(json.dumps(doc))
    imp = read_boxes(tmp_path / "t.json", "largecrowd")["frame_1"]
    np.testing.assert_allclose(imp.boxes, [[10, 20, 30, 90, 1.0]])
    assert imp.keypoints is not None
    np.testing.assert_allclose(imp.keypoints[0, 0], [100, 25, 1])


def test_panda_full_body_boxes(tmp_path: Path) -> None:
    doc = {
        "01_scene/IMG_01_01.jpg": {
            "image size": {"height": 1000, "width": 2000},
            "objects list": [
                {
                    "category": "person",
                    "rects": {"full body": {"tl": {"x": 0.1, "y": 0.2}, "br": {"x": 0.15, "y": 0.4}}},
                },
                {
                    "category": "crowd",
                    "rects": {"full body": {"tl": {"x": 0, "y": 0}, "br": {"x": 1, "y": 1}}},
                },
            ],
        }
    }
    (tmp_path / "p.json").write_text(json.dumps(doc))
    imp = read_boxes(tmp_path / "p.json", "panda")["IMG_01_01"]
    np.testing.assert_allclose(imp.boxes, [[200, 200, 300, 400, 1.0]])


@pytest.mark.parametrize(
    ("content", "fmt", "message"),
    [
        ("{", "panda", "not valid JSON"),
        ('{"x": 1}', "largecrowd", "needs a 'frame_info'"),
        ('[{"image_id": "a.jpg"}]', "coco-results", "detection 0 is malformed"),
        ("[]", "yolo-txt", "unknown detections file format"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, content: str, fmt: str, message: str) -> None:
    (tmp_path / "f.json").write_text(content)
    with pytest.raises(InputError, match=message) as e:
        read_boxes(tmp_path / "f.json", fmt)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="not found"):
        read_boxes(tmp_path / "missing.json", "panda")
