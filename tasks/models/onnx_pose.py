"""Top-down pose models exported to ONNX from mmpose (heatmap heads: SimpleBaseline, HRNet ...) or
RTMPose (SimCC heads), run through onnxruntime with mmpose's conventions, so users bring their own.

Pre-processing (mmpose top-down): the crop (tasks/pose2d.py, the box grown to the input's aspect
ratio and by 1.25) as RGB, normalised by ImageNet mean (123.675, 116.28, 103.53) and std (58.395,
57.12, 57.375), NCHW float32. The input size is read from the model (e.g. 1x3x256x192: w 192, h 256).
Decoding, told apart by the outputs:
- one (1, K, h', w') output: heatmaps. Each joint at its argmax, moved a quarter pixel toward the
  higher neighbour (mmpose `refine_keypoints`), scaled by input / heatmap size; confidence = the peak.
- two (1, K, L) outputs: SimCC x and y (RTMPose); position = argmax / split ratio (L / input side,
  2.0 for RTMPose); confidence = the smaller of the two maxima, as mmpose.
K must be 17 (COCO order).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from tasks import InputError
from tasks.files import file_sha256

MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)


def decode_heatmaps(hm: np.ndarray, input_wh: tuple[int, int]) -> np.ndarray:
    """hm (N, K, h, w) -> (N, K, 3) x, y in input pixels, peak value."""
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, -1)
    idx = flat.argmax(-1)
    y, x = np.divmod(idx, w)
    conf = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    xs, ys = x.astype(np.float64), y.astype(np.float64)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    inner_x = (x > 0) & (x < w - 1)
    inner_y = (y > 0) & (y < h - 1)
    dx = hm[ni, ki, y, np.clip(x + 1, 0, w - 1)] - hm[ni, ki, y, np.clip(x - 1, 0, w - 1)]
    dy = hm[ni, ki, np.clip(y + 1, 0, h - 1), x] - hm[ni, ki, np.clip(y - 1, 0, h - 1), x]
    xs += np.where(inner_x, np.sign(dx) * 0.25, 0.0)
    ys += np.where(inner_y, np.sign(dy) * 0.25, 0.0)
    out = np.stack([xs * input_wh[0] / w, ys * input_wh[1] / h, conf], -1)
    return out.astype(np.float32)


def decode_simcc(sx: np.ndarray, sy: np.ndarray, input_wh: tuple[int, int]) -> np.ndarray:
    """sx (N, K, Lx), sy (N, K, Ly) -> (N, K, 3) x, y in input pixels, min of the two maxima."""
    rx, ry = sx.shape[-1] / input_wh[0], sy.shape[-1] / input_wh[1]
    x, y = sx.argmax(-1) / rx, sy.argmax(-1) / ry
    conf = np.minimum(sx.max(-1), sy.max(-1))
    return np.stack([x, y, conf], -1).astype(np.float32)


class OnnxPose:
    def __init__(self, path: Path, name: str, sha256: str, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own untyped errors for corrupt or non-ONNX files
            raise InputError(f"cannot load pose ONNX model {path}: {str(e).splitlines()[0]}") from e
        inp = self.session.get_inputs()[0]
        outs = self.session.get_outputs()
        if len(inp.shape) != 4 or not all(isinstance(d, int) for d in inp.shape[1:]) or inp.shape[1] != 3:
            raise InputError(f"{path}: expected a 1x3xHxW image input, got {inp.shape}")
        self.input_name = inp.name
        self.size = (int(inp.shape[3]), int(inp.shape[2]))  # (w, h)
        ranks = [len(o.shape) for o in outs]
        if ranks[:1] == [4]:
            self.kind = "heatmap"
        elif ranks[:2] == [3, 3]:
            self.kind = "simcc"
        else:
            raise InputError(f"{path}: outputs {[o.shape for o in outs]} are neither heatmaps nor SimCC")
        joints = outs[0].shape[1]
        if joints != 17:
            raise InputError(f"{path}: {joints} keypoints; COCO-17 models only")
        self.name, self.sha256 = name, sha256

    @staticmethod
    def load(path: str) -> OnnxPose:
        return _load_cached(path)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """crops (N, h, w, 3) uint8 RGB -> (N, 17, 3) float32 x, y in crop pixels, confidence."""
        w, h = self.size
        if crops.ndim != 4 or crops.shape[1:] != (h, w, 3) or crops.dtype != np.uint8:
            raise ValueError(
                f"this model wants (N, {h}, {w}, 3) uint8 crops, got {crops.shape} {crops.dtype}"
            )
        x = ((crops.astype(np.float32) - MEAN) / STD).transpose(0, 3, 1, 2)
        out = []
        for one in x:  # exports usually fix the batch to 1
            res = self.session.run(None, {self.input_name: one[None]})
            out.append(
                decode_heatmaps(res[0], self.size)
                if self.kind == "heatmap"
                else decode_simcc(res[0], res[1], self.size)
            )
        return np.concatenate(out) if out else np.zeros((0, 17, 3), np.float32)


@lru_cache(maxsize=2)
def _load_cached(spec: str) -> OnnxPose:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise InputError(f"pose model file not found: {path}")
    return OnnxPose(path, str(path), file_sha256(path))
