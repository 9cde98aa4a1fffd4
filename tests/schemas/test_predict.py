"""predict.json (schemas/predict.py): the exact GigaCrowd format, one-line errors, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schemas.predict import (
    FramePrediction,
    PersonPrediction,
    PredictionsError,
    predictions_json,
    read_predictions,
    write_predictions,
)
from tests.conftest import one_line_error

K = [[23000.0, 0.0, 9600.0], [0.0, 23000.0, 3200.0], [0.0, 0.0, 1.0]]


def person(**overrides: Any) -> dict[str, Any]:
    p = {
        "pose": [0.01 * i for i in range(72)],
        "shape": [0.1] * 10,
        "trans_cam": [1.5, 2.0, 30.0],
        "scale_smpl": 1.0,
        "gender": "neutral",
    }
    p.update(overrides)
    return p


def document(**person_overrides: Any) -> dict[str, Any]:
    return {
        "playground1_00_000001.jpg": {
            "Intrinsic_matrix": K,
            "person_list": [person(), person(**person_overrides)],
        }
    }


def test_reads_the_gigacrowd_format(tmp_path: Path) -> None:
    path = tmp_path / "predict.json"
    path.write_text(json.dumps(document()))
    preds = read_predictions(path)
    assert list(preds) == ["playground1_00_000001.jpg"]
    frame = preds["playground1_00_000001.jpg"]
    assert frame.intrinsic_matrix[0] == (23000.0, 0.0, 9600.0)
    assert len(frame.person_list) == 2
    assert frame.person_list[0].trans_cam == (1.5, 2.0, 30.0)
    a = frame.to_arrays()
    assert a.K.shape == (3, 3) and a.pose.shape == (2, 72) and a.shape.shape == (2, 10)
    assert a.trans_cam.shape == (2, 3) and a.scale_smpl.tolist() == [1.0, 1.0]
    assert a.pose[0, 71] == pytest.approx(0.71)


def test_written_keys_are_the_submission_keys(tmp_path: Path) -> None:
    path = tmp_path / "predict.json"
    write_predictions(
        {"a_000001.jpg": FramePrediction.model_validate(document()["playground1_00_000001.jpg"])}, path
    )
    data = json.loads(path.read_text())
    assert list(data["a_000001.jpg"]) == ["Intrinsic_matrix", "person_list"]
    assert list(data["a_000001.jpg"]["person_list"][0]) == [
        "pose",
        "shape",
        "trans_cam",
        "scale_smpl",
        "gender",
    ]


def test_round_trip_from_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 5
    pose, shape, trans = rng.normal(size=(n, 72)), rng.normal(size=(n, 10)), rng.normal(size=(n, 3))
    scale = rng.uniform(0.5, 2.0, n)
    preds = {
        "b_000002.jpg": FramePrediction.from_arrays(np.array(K), pose, shape, trans, scale),
        "a_000001.jpg": FramePrediction.from_arrays(np.array(K), pose[:0], shape[:0], trans[:0]),
    }
    path = tmp_path / "out" / "predict.json"
    write_predictions(preds, path)
    back = read_predictions(path)
    assert back == preds
    assert list(back) == ["a_000001.jpg", "b_000002.jpg"]  # sorted on disk
    a = back["b_000002.jpg"].to_arrays()
    # Exact: JSON floats round-trip bit for bit.
    np.testing.assert_array_equal(a.pose, pose)
    np.testing.assert_array_equal(a.shape, shape)
    np.testing.assert_array_equal(a.trans_cam, trans)
    np.testing.assert_array_equal(a.scale_smpl, scale)
    empty = back["a_000001.jpg"].to_arrays()
    assert empty.pose.shape == (0, 72) and empty.trans_cam.shape == (0, 3)
    first = path.read_bytes()
    write_predictions(back, path)
    assert path.read_bytes() == first
    assert [p.name for p in path.parent.iterdir()] == ["predict.json"]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"pose": [0.0] * 71}, "person_list[1].pose", "at least 72 items"),
        ({"shape": [0.0] * 11}, "person_list[1].shape", "at most 10 items"),
        ({"trans_cam": [0.0, 0.0]}, "person_list[1].trans_cam", ""),
        ({"trans_cam": [0.0, "1.0", 3.0]}, "person_list[1].trans_cam[1]", "valid number"),
        ({"scale_smpl": 0.0}, "person_list[1].scale_smpl", "greater than 0"),
        ({"scale_smpl": True}, "person_list[1].scale_smpl", "valid number"),
        ({"gender": "other"}, "person_list[1].gender", "'neutral', 'male' or 'female'"),
        ({"gender": None}, "person_list[1].gender", ""),
        ({"trans": [0.0, 0.0, 1.0]}, "person_list[1].trans", "unknown key"),
    ],
    ids=[
        "short-pose",
        "long-shape",
        "short-trans",
        "string",
        "zero-scale",
        "bool",
        "gender",
        "null",
        "extra",
    ],
)
def test_bad_person_names_file_frame_and_field(
    tmp_path: Path, overrides: dict[str, Any], field: str, message: str
) -> None:
    path = tmp_path / "predict.json"
    path.write_text(json.dumps(document(**overrides)))
    text = one_line_error(PredictionsError, read_predictions, path)
    assert text.startswith(f"{path}: frame 'playground1_00_000001.jpg': {field}")
    assert message in text


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / "predict.json"
    text = json.dumps(document()).replace("30.0", value, 1)
    path.write_text(text)
    with pytest.raises(
        PredictionsError, match=r"person_list\[0\]\.trans_cam\[2\]: Input should be a finite number"
    ):
        read_predictions(path)


def test_missing_key(tmp_path: Path) -> None:
    doc = document()
    del doc["playground1_00_000001.jpg"]["person_list"][0]["scale_smpl"]
    path = tmp_path / "predict.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(PredictionsError, match=r"person_list\[0\]\.scale_smpl: Field required$"):
        read_predictions(path)


@pytest.mark.parametrize(
    ("k", "message"),
    [
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]], "last row must be [0, 0, 1]"),
        ([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], "must be > 0"),
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "at least 3 items"),
    ],
    ids=["bottom-row", "negative-focal", "two-rows"],
)
def test_bad_intrinsics(tmp_path: Path, k: list[list[float]], message: str) -> None:
    doc = document()
    doc["playground1_00_000001.jpg"]["Intrinsic_matrix"] = k
    path = tmp_path / "predict.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(PredictionsError) as info:
        read_predictions(path)
    assert str(info.value).startswith(f"{path}: frame 'playground1_00_000001.jpg': Intrinsic_matrix")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "invalid JSON at line 1 column 1"),
        ('{"a.jpg": {', "invalid JSON at line 1 column 12"),
        ("[]", "expected a JSON object mapping frame names to predictions, got list"),
        ('{"": {"Intrinsic_matrix": [], "person_list": []}}', "a frame name is empty"),
        ('{"a.jpg": []}', "frame 'a.jpg': (top level): Input should be a valid dictionary"),
    ],
    ids=["empty", "truncated", "list", "empty-name", "frame-not-object"],
)
def test_bad_document(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "predict.json"
    path.write_text(content)
    with pytest.raises(PredictionsError) as info:
        read_predictions(path)
    assert len(str(info.value).splitlines()) == 1
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PredictionsError, match="file not found"):
        read_predictions(tmp_path / "nope.json")


def test_many_problems_are_counted_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "predict.json"
    path.write_text(json.dumps(document(pose=[0.0], shape=[0.0])))
    with pytest.raises(PredictionsError, match=r"\(and 1 more problem\(s\)\)$"):
        read_predictions(path)


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "predict.json"
    old = {"a_1.jpg": FramePrediction.model_validate({"Intrinsic_matrix": K, "person_list": []})}
    write_predictions(old, path)
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    new = {"b_1.jpg": FramePrediction.model_validate({"Intrinsic_matrix": K, "person_list": [person()]})}
    with pytest.raises(OSError, match="disk full"):
        write_predictions(new, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["predict.json"]


def test_models_are_frozen_and_strict() -> None:
    p = PersonPrediction.model_validate(person())
    with pytest.raises(ValueError, match="frozen"):
        p.scale_smpl = 2.0  # type: ignore[misc]
    assert predictions_json({}) == "{}\n"


def test_written_files_get_the_usual_mode_not_owner_only(tmp_path: Path) -> None:
    from schemas.io import atomic_write_text

    atomic_write_text(tmp_path / "a.json", "{}")
    mode = (tmp_path / "a.json").stat().st_mode & 0o777
    assert mode == 0o666 & ~_current_umask()


def _current_umask() -> int:
    import os

    m = os.umask(0)
    os.umask(m)
    return m
