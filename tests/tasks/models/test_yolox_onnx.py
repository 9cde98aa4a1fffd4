"""YOLOX-Nano through onnxruntime: YOLOX's pre/post-processing, and people found in real photographs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks import InputError
from tasks.models.yolox_onnx import PAD_VALUE, YoloxOnnx, grid_decode, letterbox


def test_letterbox_scales_into_the_corner_as_bgr_with_114_padding() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[..., 0] = 10  # R
    image[..., 2] = 30  # B
    x, ratio = letterbox(image, (416, 416))
    assert ratio == pytest.approx(2.08)
    assert x.shape == (3, 416, 416) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 100, 300], [30, 0, 10])  # BGR, unnormalised
    np.testing.assert_array_equal(x[:, 300, 300], [PAD_VALUE] * 3)  # below the 208 scaled rows


def test_grid_decode_places_a_cell_by_its_stride() -> None:
    raw = np.zeros((3549, 85), np.float32)
    # Anchor 52 * 3 + 5: stride 8, row 3, column 5; anchor 2704 + 13 * 2 + 1: stride 16, row 2, column 1.
    raw[3 * 52 + 5, :4] = [0.5, 0.25, np.log(4.0), 0.0]
    raw[2704 + 2 * 26 + 1, :4] = [0.0, 0.0, 0.0, np.log(2.0)]
    out = grid_decode(raw, (416, 416))
    np.testing.assert_allclose(out[3 * 52 + 5, :4], [(5 + 0.5) * 8, (3 + 0.25) * 8, 32, 8])
    np.testing.assert_allclose(out[2704 + 2 * 26 + 1, :4], [16, 32, 16, 32])
    with pytest.raises(InputError, match="anchors"):
        grid_decode(raw[:100], (416, 416))


def test_finds_the_people_of_a_real_street_photograph(photo: object) -> None:
    model = YoloxOnnx.load()
    rgb = photo.numpy()  # type: ignore[attr-defined]
    boxes = model([rgb])[0]
    assert boxes.shape[1] == 5 and (boxes[:, 4] >= 0.23).all()
    # Hand-read from the photograph (1116 x 600): a pedestrian on the left (torso near (230, 320), about
    # 250 px tall) and a man pushing a tricycle (torso near (420, 300), about 280 px tall).
    for x, y, h in ((230, 320, 250), (420, 300, 280)):
        inside = boxes[(boxes[:, 0] < x) & (x < boxes[:, 2]) & (boxes[:, 1] < y) & (y < boxes[:, 3])]
        heights = inside[:, 3] - inside[:, 1]
        assert (abs(heights - h) < 0.15 * h).any(), f"no {h} px person box around ({x}, {y}): {inside}"
    tall = boxes[boxes[:, 3] - boxes[:, 1] > 150]
    assert (tall[:, 3] - tall[:, 1] > 1.2 * (tall[:, 2] - tall[:, 0])).all()  # upright people


def test_box_on_an_annotated_coco_person(coco_person: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    rgb, box, _ = coco_person
    found = YoloxOnnx.load()([rgb])[0]
    from tasks.boxes import iou_matrix

    assert iou_matrix(box[None], found[:, :4]).max() > 0.75


def test_bad_model_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown built-in detector"):
        YoloxOnnx.load("builtin:yolox-x")
    with pytest.raises(InputError, match="not found"):
        YoloxOnnx.load(str(tmp_path / "nope.onnx"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01garbage" * 100)
    with pytest.raises(InputError, match="cannot load YOLOX ONNX model") as e:
        YoloxOnnx.load(str(junk))
    assert "\n" not in str(e.value)


def test_damaged_builtin_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.models.yolox_onnx as y

    bad = tmp_path / "yolox.onnx"
    bad.write_bytes(y.NANO_PATH.read_bytes()[:-10])
    monkeypatch.setitem(y.BUILTINS, y.BUILTIN_NANO, (bad, y.NANO_SHA256))
    y._load_cached.cache_clear()
    try:
        with pytest.raises(InputError, match="damaged"):
            y.YoloxOnnx.load()
    finally:
        y._load_cached.cache_clear()


def test_dynamic_nano_is_the_same_network_at_any_size(photo: object) -> None:
    """builtin:yolox-nano-dynamic (python -m tasks.models.build_yolox_dynamic) holds the 416 model's
    weights in a graph whose input size is free: at 416 the outputs agree, and a 1024 input works."""
    rgb = photo.numpy()  # type: ignore[attr-defined]
    x = letterbox(rgb, (416, 416))[0][None]
    fixed, dynamic = YoloxOnnx.load(), YoloxOnnx.load("builtin:yolox-nano-dynamic", 416)
    np.testing.assert_allclose(dynamic.raw(x)[..., 4:], fixed.raw(x)[..., 4:], atol=2e-4)
    big = YoloxOnnx.load("builtin:yolox-nano-dynamic", 1024)
    assert big.size == (1024, 1024)
    boxes = big([rgb])[0]
    assert len(boxes) >= 4 and big.raw(letterbox(rgb, (1024, 1024))[0][None]).shape == (1, 21504, 85)
    with pytest.raises(InputError, match="multiple of 32"):
        YoloxOnnx.load("builtin:yolox-nano-dynamic", 1000)
