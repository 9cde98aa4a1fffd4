"""PyTorch YOLOX: official-layout checkpoints load, match the shipped ONNX model, and export back to it.

No official .pth can be had here: the `yolox_checkpoint` fixture (tests/conftest.py) makes one in the
official layout from the shipped YOLOX-Nano ONNX file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tasks import InputError
from tasks.models.yolox import VARIANTS, YOLOX, YoloxTorch, infer_variant
from tasks.models.yolox_onnx import YoloxOnnx, letterbox


def test_variants_are_recognised_from_their_state_dicts() -> None:
    for name in VARIANTS:
        for classes in (1, 80):
            assert infer_variant(YOLOX(name, classes).state_dict()) == (name, classes)


def test_official_layout_matches_the_onnx_model_on_a_real_photo(
    yolox_checkpoint: Path, photo: object
) -> None:
    checkpoint = yolox_checkpoint
    torch_model = YoloxTorch.load(str(checkpoint), size=416)
    assert (torch_model.variant, torch_model.num_classes) == ("nano", 80)
    x = letterbox(photo.numpy(), (416, 416))[0][None]  # type: ignore[attr-defined]
    ours, theirs = torch_model.raw(x), YoloxOnnx.load().raw(x)
    assert ours.shape == theirs.shape == (1, 3549, 85)
    np.testing.assert_allclose(ours[..., 4:], theirs[..., 4:], atol=2e-4)  # probabilities
    np.testing.assert_allclose(ours[..., :4], theirs[..., :4], atol=2e-3, rtol=1e-4)  # box terms
    rgb = photo.numpy()  # type: ignore[attr-defined]
    a, b = torch_model([rgb])[0], YoloxOnnx.load()([rgb])[0]
    assert len(a) == len(b) >= 5
    np.testing.assert_allclose(a, b, atol=0.05)


def test_exported_onnx_runs_like_the_checkpoint(yolox_checkpoint: Path, tmp_path: Path) -> None:
    checkpoint = yolox_checkpoint
    torch_model = YoloxTorch.load(str(checkpoint), size=416)
    out = tmp_path / "exported.onnx"
    torch.onnx.export(
        torch_model.model, torch.zeros(1, 3, 416, 416), str(out), input_names=["images"],
        output_names=["output"], opset_version=17, dynamo=False,
    )  # fmt: skip
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 416, 416)).astype(np.float32)
    np.testing.assert_allclose(YoloxOnnx.load(str(out)).raw(x), torch_model.raw(x), atol=2e-3, rtol=1e-4)


def test_bad_checkpoints_give_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read detector checkpoint"):
        YoloxTorch(tmp_path / "junk.pth")
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="not a YOLOX state dict"):
        YoloxTorch(tmp_path / "other.pth")
    state = YOLOX("s", 1).state_dict()
    del state["head.obj_preds.2.bias"]
    torch.save({"model": state}, tmp_path / "cut.pth")
    with pytest.raises(InputError, match="does not fit"):
        YoloxTorch(tmp_path / "cut.pth")
    with pytest.raises(InputError, match="not found"):
        YoloxTorch(tmp_path / "none.pth")
