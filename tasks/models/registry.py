"""Which network each backend name loads: small explicit registries, heavy imports inside the loaders.

A detector is called with RGB uint8 images and returns per image (K, 5) person boxes (tasks/detect.py
Detector) and has `.size` (h, w), its input; a pose model takes (N, s, s, 3) uint8 crops and returns
(N, 17, 3) keypoints in crop pixels (tasks/pose2d.py PoseModel). Models are cached per process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks import InputError


def _yolox_onnx(model: str, input_size: int, device: str) -> Any:
    from tasks.models.yolox_onnx import YoloxOnnx

    return YoloxOnnx.load(model)  # the ONNX file fixes its own input size


def _yolox_torch(model: str, input_size: int, device: str) -> Any:
    import torch

    from tasks.models.yolox import YoloxTorch

    if model.startswith("builtin:"):
        raise InputError(
            "detect.backend 'yolox' loads a .pth checkpoint; the built-in model is ONNX (backend yolox-onnx)"
        )
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    return YoloxTorch.load(model, input_size, dev)


def _movenet(model: str | None) -> Any:
    from tasks.models.movenet import BUILTIN_LIGHTNING, MoveNet

    return MoveNet.load(model or BUILTIN_LIGHTNING)


def _blazepose(model: str | None) -> Any:
    from tasks.models.blazepose import BUILTIN_FULL, BlazePose

    return BlazePose.load(model or BUILTIN_FULL)


DETECTORS: dict[str, Callable[[str, int, str], Any]] = {"yolox-onnx": _yolox_onnx, "yolox": _yolox_torch}
POSE_MODELS: dict[str, Callable[[str | None], Any]] = {"movenet": _movenet, "blazepose": _blazepose}


def load_detector(backend: str, model: str, input_size: int = 416, device: str = "auto") -> Any:
    if backend not in DETECTORS:
        raise InputError(f"unknown detector backend {backend!r}; available: {', '.join(DETECTORS)}")
    return DETECTORS[backend](model, input_size, device)


def load_pose_model(backend: str, model: str | None = None) -> Any:
    """The pose network of `backend`: `model` (a builtin: name or a file), or the backend's own."""
    if backend not in POSE_MODELS:
        raise InputError(f"unknown pose backend {backend!r}; available: {', '.join(POSE_MODELS)}")
    return POSE_MODELS[backend](model)
