"""mmpose-style ONNX pose models (heatmap and SimCC heads): pre-processing, decoding and the way back to
image pixels, checked with small exported models whose output peaks where the crop is brightest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tasks import InputError
from tasks.models.onnx_pose import OnnxPose, decode_heatmaps, decode_simcc
from tasks.pose2d import crop, to_image


class _Heatmaps(torch.nn.Module):
    """(1, 3, 256, 192) -> (1, 17, 64, 48): brightness pooled 4x4, the same map for every joint."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), 4).repeat(1, 17, 1, 1)


class _SimCC(torch.nn.Module):
    """(1, 3, 256, 192) -> x (1, 17, 384), y (1, 17, 512): brightness per column / row, 2x split."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.mean(1)  # (1, 256, 192)
        sx = b.amax(1).repeat_interleave(2, -1)[:, None].repeat(1, 17, 1)
        sy = b.amax(2).repeat_interleave(2, -1)[:, None].repeat(1, 17, 1)
        return sx, sy


def _export(model: torch.nn.Module, path: Path, outputs: list[str]) -> Path:
    torch.onnx.export(model, torch.zeros(1, 3, 256, 192), str(path), input_names=["input"],
                      output_names=outputs, opset_version=17, dynamo=False)  # fmt: skip
    return path


@pytest.mark.parametrize("kind", ["heatmap", "simcc"])
def test_a_bright_spot_comes_back_where_it_is_in_the_image(tmp_path: Path, kind: str) -> None:
    pytest.importorskip("onnx")
    if kind == "heatmap":
        path = _export(_Heatmaps(), tmp_path / "hm.onnx", ["heatmaps"])
    else:
        path = _export(_SimCC(), tmp_path / "simcc.onnx", ["simcc_x", "simcc_y"])
    model = OnnxPose.load(str(path))
    assert model.kind == kind and model.size == (192, 256)
    image = np.zeros((1200, 900, 3), np.uint8)
    box = np.array([300.0, 200.0, 500.0, 800.0])  # 200 x 600: taller than the 3:4 input
    for sx, sy in [(420, 350), (330, 760)]:
        img = image.copy()
        img[sy - 4 : sy + 4, sx - 4 : sx + 4] = 255  # an 8 px spot centred on (sx, sy)
        c, a = crop(img, box, model.size)
        assert c.shape == (256, 192, 3)
        kp = to_image(model(c[None])[0], a)
        # heatmap cells are 4 input px = 4 / s image px; SimCC bins half an input px
        tol = 4 / a[0, 0] if kind == "heatmap" else 1.5 / a[0, 0]
        assert np.abs(kp[:, 0] - sx).max() <= tol and np.abs(kp[:, 1] - sy).max() <= tol
        assert np.isfinite(kp[:, 2]).all()  # the toy models' peaks are not probabilities


def test_decoders_on_hand_made_outputs() -> None:
    hm = np.zeros((1, 17, 64, 48), np.float32)
    hm[0, :, 10, 20] = 0.9
    hm[0, :, 10, 21] = 0.5  # the right neighbour is higher: a quarter cell to the right
    out = decode_heatmaps(hm, (192, 256))
    np.testing.assert_allclose(out[0, 0], [(20.25) * 4, 10 * 4, 0.9])
    sx, sy = np.zeros((1, 17, 384), np.float32), np.zeros((1, 17, 512), np.float32)
    sx[..., 100], sy[..., 300] = 0.8, 0.6
    np.testing.assert_allclose(decode_simcc(sx, sy, (192, 256))[0, 3], [50, 150, 0.6])


def test_wrong_models_are_refused(tmp_path: Path) -> None:
    pytest.importorskip("onnx")

    class Three(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.avg_pool2d(x, 4)  # 3 "joints"

    path = _export(Three(), tmp_path / "three.onnx", ["heatmaps"])
    with pytest.raises(InputError, match="3 keypoints; COCO-17 models only"):
        OnnxPose.load(str(path))
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot load pose ONNX model"):
        OnnxPose.load(str(tmp_path / "junk.onnx"))


def test_registry_says_in_one_line_what_a_pose_backend_lacks() -> None:
    from tasks.models.registry import load_pose_model

    with pytest.raises(InputError, match=r"needs pose2d\.model"):
        load_pose_model("onnx")
    with pytest.raises(InputError, match=r"CONFIG\.py::CHECKPOINT\.pth"):
        load_pose_model("mmpose", "cfg.py")
    try:
        import mmpose  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="needs mmpose, which is not importable here") as e:
            load_pose_model("mmpose", "cfg.py::ckpt.pth")
        assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="unknown pose backend"):
        load_pose_model("openpose")
