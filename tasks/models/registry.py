"""Which network each backend name loads: small explicit registries (a dict from the scene's backend
name to a loader), heavy imports inside the loaders.

A detector is called with RGB uint8 images and returns per image (K, 5) person boxes (tasks/detect.py
Detector) and has `.size` (h, w), its input; a pose model takes (N, s, s, 3) uint8 crops and returns
(N, 17, 3) keypoints in crop pixels (tasks/pose2d.py PoseModel); a regressor is a tasks/regress.py
Regressor. Models are cached per process.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from tasks import InputError


def resolve_device(device: str) -> str:
    """A torch device name: `auto` is cuda when a GPU is visible, else cpu; others as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _yolox_onnx(model: str, input_size: int, device: str) -> Any:
    from tasks.models.yolox_onnx import YoloxOnnx

    return YoloxOnnx.load(model, input_size)  # input_size matters for graphs with a free size only


def _yolox_torch(model: str, input_size: int, device: str) -> Any:
    from tasks.models.yolox import YoloxTorch

    if model.startswith("builtin:"):
        raise InputError(
            "detect.backend 'yolox' loads a .pth checkpoint; the built-in model is ONNX (backend yolox-onnx)"
        )
    return YoloxTorch.load(model, input_size, resolve_device(device))


def _movenet(model: str | None) -> Any:
    from tasks.models.movenet import BUILTIN_LIGHTNING, MoveNet

    return MoveNet.load(model or BUILTIN_LIGHTNING)


def _blazepose(model: str | None) -> Any:
    from tasks.models.blazepose import BUILTIN_FULL, BlazePose

    return BlazePose.load(model or BUILTIN_FULL)


DETECTORS: dict[str, Callable[[str, int, str], Any]] = {"yolox-onnx": _yolox_onnx, "yolox": _yolox_torch}


def _onnx_pose(model: str | None) -> Any:
    from tasks.models.onnx_pose import OnnxPose

    if not model or model.startswith("builtin:"):
        raise InputError(
            "pose2d.backend 'onnx' needs pose2d.model: the path of an mmpose/RTMPose ONNX export"
        )
    return OnnxPose.load(model)


class MmposeTopDown:
    """An mmpose top-down model (config + checkpoint) through mmpose's own inference API, on our crops:
    each crop is given to `inference_topdown` with the crop's full extent as the box."""

    def __init__(self, config: str, checkpoint: str, size: int = 256) -> None:
        try:
            from mmpose.apis import inference_topdown, init_model
        except ImportError as e:
            raise InputError(
                f"pose2d.backend 'mmpose' needs mmpose, which is not importable here ({e}); mmpose does not "
                "install from PyPI with numpy 2: export the model to ONNX and use backend 'onnx'"
            ) from None
        self._infer = inference_topdown
        self.model = init_model(config, checkpoint, device="cpu")
        self.size = size  # the crop handed to mmpose, which makes its own input from it

    def __call__(self, crops: Any) -> Any:
        import numpy as np

        out = np.zeros((len(crops), 17, 3), np.float32)
        for i, c in enumerate(crops):
            box = np.array([[0, 0, c.shape[1], c.shape[0]]], np.float32)
            res = self._infer(self.model, c[..., ::-1].copy(), box)[0].pred_instances  # mmpose wants BGR
            out[i, :, :2] = res.keypoints[0][:17]
            out[i, :, 2] = res.keypoint_scores[0][:17]
        return out


def _mmpose(model: str | None) -> Any:
    if not model or "::" not in model:
        raise InputError("pose2d.backend 'mmpose' needs pose2d.model 'CONFIG.py::CHECKPOINT.pth'")
    config, checkpoint = model.split("::", 1)
    return MmposeTopDown(config, checkpoint)


POSE_MODELS: dict[str, Callable[[str | None], Any]] = {
    "mmpose": _mmpose,
    "movenet": _movenet,
    "blazepose": _blazepose,
    "onnx": _onnx_pose,
}


def load_detector(backend: str, model: str, input_size: int = 416, device: str = "auto") -> Any:
    if backend not in DETECTORS:
        raise InputError(f"unknown detector backend {backend!r}; available: {', '.join(DETECTORS)}")
    return DETECTORS[backend](model, input_size, device)


def load_pose_model(backend: str, model: str | None = None) -> Any:
    """The pose network of `backend`: `model` (a builtin: name or a file), or the backend's own."""
    if backend not in POSE_MODELS:
        raise InputError(f"unknown pose backend {backend!r}; available: {', '.join(POSE_MODELS)}")
    return POSE_MODELS[backend](model)


def _embedded(model: str | None, device: str) -> Any:
    from tasks.models.embedded import BUILTIN_KP, load_embedded

    return load_embedded(model or BUILTIN_KP).to(device)


def _cliff(model: str | None, device: str) -> Any:
    from pathlib import Path

    from tasks.models.cliff import CliffRegressor

    if not model or model.startswith("builtin:"):
        raise InputError("regress.backend 'cliff' needs regress.model: the path of a CLIFF checkpoint")
    return CliffRegressor(Path(model).expanduser(), device)


REGRESSORS: dict[str, Callable[[str | None, str], Any]] = {"embedded": _embedded, "cliff": _cliff}


def load_regressor(backend: str, model: str | None = None, device: str = "cpu") -> Any:
    """The regress stage's network (a tasks/regress.py Regressor), once per process and device: backend
    `embedded` (model default builtin:embedded-kp) or `cliff` (model: an official CLIFF checkpoint
    path); device: a torch device or `auto`."""
    if backend not in REGRESSORS:
        raise InputError(f"unknown regress backend {backend!r}; available: {', '.join(REGRESSORS)}")
    return _regressor(backend, model, resolve_device(device))


@lru_cache(maxsize=2)
def _regressor(backend: str, model: str | None, device: str) -> Any:
    return REGRESSORS[backend](model, device)
