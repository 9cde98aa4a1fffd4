"""MoveNet SinglePose Lightning (int8 TFLite, COCO-17) through Google's LiteRT runtime (ai-edge-litert).

The shipped file is `weights/movenet_singlepose_lightning_int8.tflite` (Google, Apache-2.0; see
weights/NOTICE.md). Input: one 192x192 RGB uint8 crop centred on the person; output: 17 keypoints
(y, x, score) normalised to the crop, COCO-17 order.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from tasks import InputError
from tasks.files import litert_interpreter, model_file

BUILTIN_LIGHTNING = "builtin:movenet-lightning"
LIGHTNING_PATH = Path(__file__).parent / "weights" / "movenet_singlepose_lightning_int8.tflite"
LIGHTNING_SHA256 = "cd7cc22fa946e5d146a7b98d496853e1923e22828d3972d579973f27f91bb105"


class MoveNet:
    def __init__(self, path: Path, name: str, sha256: str, threads: int = 1) -> None:
        self.interpreter = litert_interpreter(path, "MoveNet", threads)
        inp = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        if len(inp["shape"]) != 4 or inp["shape"][3] != 3 or tuple(out["shape"][-2:]) != (17, 3):
            raise InputError(f"{path} is not a MoveNet single-pose model: {inp['shape']} -> {out['shape']}")
        self._in, self._out, self._dtype = inp["index"], out["index"], inp["dtype"]
        self.size = int(inp["shape"][1])
        self.name, self.sha256 = name, sha256

    @staticmethod
    def load(spec: str = BUILTIN_LIGHTNING) -> MoveNet:
        """The model for `spec` ("builtin:movenet-lightning" or a path to a .tflite), once per process."""
        return _load_cached(spec)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """crops (N, s, s, 3) uint8 RGB, s = self.size -> (N, 17, 3) float32 x, y in crop pixels, score."""
        if crops.ndim != 4 or crops.shape[1:] != (self.size, self.size, 3) or crops.dtype != np.uint8:
            want = f"(N, {self.size}, {self.size}, 3) uint8"
            raise ValueError(f"MoveNet wants {want} crops, got {crops.shape} {crops.dtype}")
        out = np.empty((len(crops), 17, 3), dtype=np.float32)
        for i, crop in enumerate(crops):
            self.interpreter.set_tensor(self._in, crop[None].astype(self._dtype))
            self.interpreter.invoke()
            yxs = self.interpreter.get_tensor(self._out).reshape(17, 3)
            out[i, :, 0] = yxs[:, 1] * self.size
            out[i, :, 1] = yxs[:, 0] * self.size
            out[i, :, 2] = yxs[:, 2]
        return out


@lru_cache(maxsize=4)
def _load_cached(spec: str) -> MoveNet:
    return MoveNet(*model_file(spec, {BUILTIN_LIGHTNING: (LIGHTNING_PATH, LIGHTNING_SHA256)}, "pose model"))
