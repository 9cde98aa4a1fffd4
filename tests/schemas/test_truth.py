"""truth.json (schemas/truth.py): LargeCrowd-style people, camera, ground; deterministic bytes; errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schemas.truth import Truth, TruthError, read_truth, truth_json, write_truth
from tests.conftest import one_line_error

W, H = 2000, 1000
FRAME = "plaza_000007.jpg"


def person(i: int = 0, **overrides: Any) -> dict[str, Any]:
    kp = [[0.1 + 0.01 * k + 0.1 * i, 0.2 + 0.02 * k, 2] for k in range(17)]
    kp[3][2] = 1
    kp[4] = [1.2, 0.5, 0]  # outside the image: ratios may leave [0, 1]
    p = {
        "bbox": [100.0 + 200 * i, 150.0, 180.0 + 200 * i, 400.0],
        "keypoints": kp,
        "type": "normal",
        "hvip2d": [140.0 + 200 * i, 410.0],
        "hvip3d": [0.5 * i, 1.6, 12.0],
        "torso_center": [0.5 * i, 0.6, 12.0],
        "smpl": {"pose": [0.0] * 72, "shape": [0.0] * 10, "transl": [0.5 * i, 0.8, 12.0]},
        "visibility": 0.9,
    }
    p.update(overrides)
    return p


def document(**overrides: Any) -> dict[str, Any]:
    d = {
        "image_shape": {"height": H, "width": W},
        "intrinsics": [[2236.0, 0.0, 1000.0], [0.0, 2236.0, 500.0], [0.0, 0.0, 1.0]],
        "ground_plane": [0.0, -0.97, -0.2431049, 4.5],
        "body_model": {"name": "builtin:neutral", "sha256": "ab" * 32},
        "frame_info": {FRAME: [person(0), person(1, keypoints=None, type="severe_occlusion")]},
    }
    d.update(overrides)
    return d


def test_round_trip_and_deterministic_bytes(tmp_path: Path) -> None:
    path = tmp_path / "truth.json"
    path.write_text(json.dumps(document(), indent=2))
    truth = read_truth(path)
    out = tmp_path / "frame" / "truth.json"
    write_truth(truth, out)
    first = out.read_bytes()
    again = read_truth(out)
    assert again == truth
    write_truth(again, out)
    assert out.read_bytes() == first
    assert first == truth_json(Truth.model_validate(document())).encode()
    assert sorted(p.name for p in out.parent.iterdir()) == ["truth.json"]


def test_frame_order_does_not_change_the_bytes() -> None:
    a = document(frame_info={"b_000002.jpg": [person()], "a_000001.jpg": []})
    b = document(frame_info={"a_000001.jpg": [], "b_000002.jpg": [person()]})
    assert truth_json(Truth.model_validate(a)) == truth_json(Truth.model_validate(b))


def test_arrays_are_pixels_and_metres() -> None:
    truth = Truth.model_validate(document())
    a = truth.arrays()
    assert truth.frames == [FRAME]
    assert (a.height, a.width) == (H, W)
    assert a.keypoints.shape == (2, 17, 2)
    # Keypoints are ratios of the image size: x * W, y * H.
    np.testing.assert_allclose(a.keypoints[0, 0], [0.1 * W, 0.2 * H])
    np.testing.assert_allclose(a.keypoints[0, 16], [(0.1 + 0.16) * W, (0.2 + 0.32) * H])
    np.testing.assert_allclose(a.keypoints[0, 4], [1.2 * W, 0.5 * H])
    assert a.keypoint_visibility[0, :5].tolist() == [2, 2, 2, 1, 0]
    # Null keypoints: NaN coordinates, visibility 0.
    assert np.isnan(a.keypoints[1]).all() and (a.keypoint_visibility[1] == 0).all()
    np.testing.assert_array_equal(a.bbox, [[100, 150, 180, 400], [300, 150, 380, 400]])
    np.testing.assert_array_equal(a.torso, [[0, 0.6, 12], [0.5, 0.6, 12]])
    np.testing.assert_array_equal(a.hvip3d[1], [0.5, 1.6, 12])
    np.testing.assert_array_equal(a.plane, [0.0, -0.97, -0.2431049, 4.5])
    assert a.K[0, 0] == 2236.0 and a.K[2].tolist() == [0, 0, 1]
    assert a.types == ("normal", "severe_occlusion")


def test_empty_frame_and_several_frames() -> None:
    truth = Truth.model_validate(document(frame_info={"a_1.jpg": [], "a_2.jpg": [person()]}))
    with pytest.raises(ValueError, match="holds 2 frames"):
        truth.arrays()
    empty = truth.arrays("a_1.jpg")
    assert empty.keypoints.shape == (0, 17, 2) and empty.bbox.shape == (0, 4) and empty.torso.shape == (0, 3)
    assert truth.arrays("a_2.jpg").bbox.shape == (1, 4)


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()
P0 = ("frame_info", FRAME, 0)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            (*P0, "keypoints"),
            [[0.1, 0.1, 2]] * 16,
            "frame 'plaza_000007.jpg': person 0: keypoints: List should",
        ),
        ((*P0, "keypoints", 5, 2), 3, "person 0: keypoints[5][2]: Input should be less than or equal to 2"),
        ((*P0, "keypoints", 5, 0), "NaN", "person 0: keypoints[5][0]: Input should be a valid number"),
        ((*P0, "bbox"), [10.0, 10.0, 5.0, 20.0], "person 0: bbox: need x2 > x1 and y2 > y1"),
        ((*P0, "type"), "crowd", "person 0: type: Input should be 'normal'"),
        ((*P0, "visibility"), 1.5, "person 0: visibility: Input should be less than or equal to 1"),
        ((*P0, "smpl", "pose"), [0.0] * 69, "person 0: smpl.pose: List should have at least 72 items"),
        ((*P0, "torso_center"), _DELETE, "person 0: torso_center: Field required"),
        ((*P0, "torso"), [0.0, 0.0, 1.0], "person 0: torso: unknown key"),
        (
            ("ground_plane",),
            [0.0, -2.0, 0.0, 1.6],
            "ground_plane: (A, B, C) must be a unit normal, its length is 2",
        ),
        (("body_model", "sha256"), "abc", "body_model.sha256: String should match pattern"),
        (("image_shape", "width"), 0, "image_shape.width: Input should be greater than 0"),
        (("frame_info",), {}, "frame_info: Dictionary should have at least 1 item"),
        (("intrinsics",), [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 2.0]], "intrinsics: last row must be [0, 0, 1]"),
    ],
    ids=[
        "16-keypoints",
        "visibility-flag",
        "string-number",
        "bbox-order",
        "type",
        "visibility",
        "pose-length",
        "missing",
        "unknown-key",
        "plane",
        "sha",
        "width",
        "no-frames",
        "intrinsics",
    ],
)
def test_bad_truth_names_file_frame_person_and_field(
    tmp_path: Path, path: tuple[Any, ...], value: Any, expected: str
) -> None:
    file = tmp_path / "truth.json"
    file.write_text(json.dumps(_set(document(), path, value)))
    text = one_line_error(TruthError, read_truth, file)
    assert text.startswith(f"{file}: ")
    assert expected in text


@pytest.mark.parametrize(
    ("content", "expected"),
    [("{", "invalid JSON at line 1 column 2"), ("[1]", "expected a JSON object"), (None, "file not found")],
    ids=["truncated", "list", "missing"],
)
def test_unreadable_truth(tmp_path: Path, content: str | None, expected: str) -> None:
    file = tmp_path / "truth.json"
    if content is not None:
        file.write_text(content)
    with pytest.raises(TruthError, match=expected):
        read_truth(file)


def test_plane_normal_to_three_decimals_is_accepted() -> None:
    # The reference table's playground1_00 normal, as printed (length 0.9994).
    truth = Truth.model_validate(document(ground_plane=[-0.025, -0.985, -0.168, 16.03]))
    assert truth.ground_plane[3] == 16.03
