"""BlazePose GHUM landmark model (full) through LiteRT, its 33 landmarks mapped to COCO-17.

The shipped file is `weights/blazepose_landmark_full.tflite` (Google MediaPipe, Apache-2.0; see
weights/NOTICE.md). Input: one 256x256 RGB crop as float [0, 1]; outputs: 33 landmarks (x, y, z,
visibility, presence) in crop pixels, visibility and presence as logits, and a pose-presence score.
MediaPipe feeds it a crop rotated upright by its pose detector; here it gets the same upright square
crop around the box as MoveNet, which suits standing crowds.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from tasks import InputError
from tasks.files import litert_interpreter, model_file

BUILTIN_FULL = "builtin:blazepose-full"
FULL_PATH = Path(__file__).parent / "weights" / "blazepose_landmark_full.tflite"
FULL_SHA256 = "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"
# BlazePose landmark index of each COCO-17 keypoint (nose, eyes' centres, ears, shoulders ... ankles)
TO_COCO17 = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


class BlazePose:
    def __init__(self, path: Path, name: str, sha256: str, threads: int = 1) -> None:
        self.interpreter = litert_interpreter(path, "BlazePose", threads)
        inp = self.interpreter.get_input_details()[0]
        outs = {tuple(o["shape"]): o["index"] for o in self.interpreter.get_output_details()}
        if tuple(inp["shape"][1:]) != (256, 256, 3) or (1, 195) not in outs or (1, 1) not in outs:
            raise InputError(f"{path} is not a BlazePose landmark model: input {inp['shape']}")
        self._in, self._landmarks, self._presence = inp["index"], outs[(1, 195)], outs[(1, 1)]
        self.size = 256
        self.name, self.sha256 = name, sha256

    @staticmethod
    def load(spec: str = BUILTIN_FULL) -> BlazePose:
        return _load_cached(spec)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """crops (N, 256, 256, 3) uint8 RGB -> (N, 17, 3) float32 COCO-17 x, y crop pixels, confidence
        (landmark visibility times the pose-presence score)."""
        if crops.ndim != 4 or crops.shape[1:] != (256, 256, 3) or crops.dtype != np.uint8:
            raise ValueError(f"BlazePose wants (N, 256, 256, 3) uint8 crops, got {crops.shape} {crops.dtype}")
        out = np.empty((len(crops), 17, 3), np.float32)
        for i, crop in enumerate(crops):
            self.interpreter.set_tensor(self._in, (crop[None] / 255.0).astype(np.float32))
            self.interpreter.invoke()
            lm = self.interpreter.get_tensor(self._landmarks).reshape(-1, 5)[TO_COCO17]  # 33 + 6 auxiliary
            presence = _sigmoid(self.interpreter.get_tensor(self._presence).reshape(()))
            out[i, :, :2] = lm[:, :2]
            out[i, :, 2] = _sigmoid(lm[:, 3]) * presence
        return out


@lru_cache(maxsize=2)
def _load_cached(spec: str) -> BlazePose:
    return BlazePose(*model_file(spec, {BUILTIN_FULL: (FULL_PATH, FULL_SHA256)}, "pose model"))
