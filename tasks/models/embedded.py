"""The regressor this project trains itself (`python -m pipeline train regressor`), and CLIFF behind the
same interface (tasks/regress.py Regressor).

Keypoints mode (`builtin:embedded-kp`): the person's 2D keypoints (COCO-17, in box-normalised units
(x - c) / b, with confidence; joints under `min_conf` are zeroed, as 3DCrowdNet zeroes unknown joints)
go through a small MLP; CLIFF's bbox info and the iterative regressor of tasks/models/cliff.py turn the
feature into SMPL pose, shape and a crop camera. No image is read, so there is no synthetic-to-real
image gap: the network is trained entirely on synthetic people of the shipped body model
(tasks/train_regressor.py) and its betas belong to that body model's shape space.

A weight file is a torch state dict; its manifest (JSON beside it) records how it was made.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tasks import InputError
from tasks.files import model_file, torch_state
from tasks.models.cliff import IterativeRegressor, load_cliff

N_KP = 17
WEIGHTS = Path(__file__).parent / "weights"
BUILTIN_KP = "builtin:embedded-kp"
BUILTINS: dict[str, tuple[Path, str]] = {
    BUILTIN_KP: (
        WEIGHTS / "embedded_kp.pt",
        "608af15257a7a336c74fb6c1ab9cbbe2905f820ed9f543e96af8cc4129aa7a03",
    ),
}


class KeypointRegressor(IterativeRegressor):
    """keypoints (N, 17, 3) box-normalised x, y and confidence + bbox info (N, 3) -> rotmat
    (N, 24, 3, 3), betas (N, 10), crop cam (N, 3)."""

    uses_image = False

    def __init__(self, width: int = 512, min_conf: float = 0.2, dropout: float = 0.1) -> None:
        super().__init__(feat_num=width, hidden=width)
        self.drop1.p = self.drop2.p = dropout
        self.min_conf = min_conf
        self.encoder = nn.Sequential(
            nn.Linear(N_KP * 3, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)
        )
        self.name, self.sha256 = "untrained", ""

    def features(self, keypoints: torch.Tensor) -> torch.Tensor:
        known = (keypoints[..., 2:] >= self.min_conf).float()
        return self.encoder((keypoints * known).flatten(1))

    def forward(
        self, keypoints: torch.Tensor, bbox_info: torch.Tensor, n_iter: int = 3
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.regress(self.features(keypoints), bbox_info, n_iter)

    def predict(
        self, crops: torch.Tensor | None, keypoints: torch.Tensor, info: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self(keypoints, info)


class CliffRegressor:
    """An official-layout CLIFF checkpoint as a tasks/regress.py Regressor (keypoints unused)."""

    uses_image = True

    def __init__(self, path: Path, device: str = "cpu") -> None:
        from tasks.files import file_sha256

        self.model = load_cliff(path).to(device)
        self.device, self.name, self.sha256 = device, str(path), file_sha256(path)

    def predict(
        self, crops: torch.Tensor | None, keypoints: torch.Tensor, info: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if crops is None:
            raise ValueError("CLIFF needs the crops")
        out = self.model(crops.to(self.device), info.to(self.device))
        return tuple(t.float().cpu() for t in out)  # type: ignore[return-value]


def manifest_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def load_keypoint_regressor(spec: str) -> KeypointRegressor:
    """`builtin:embedded-kp` (checksum-checked) or the path of weights written by the trainer."""
    path, name, sha256 = model_file(spec, BUILTINS, "regressor")
    manifest = manifest_path(path)
    config: dict[str, Any] = {}
    if manifest.is_file():
        config = json.loads(manifest.read_text()).get("model", {})
    model = KeypointRegressor(**config)
    state = torch_state(path, "regressor weights")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(
            f"{path}: not keypoint-regressor weights: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    model.name, model.sha256 = name, sha256
    return model.eval()


@lru_cache(maxsize=2)
def load_regressor(backend: str, model: str | None, device: str = "cpu") -> Any:
    """The regress stage's network, once per process: backend 'embedded' (model default
    builtin:embedded-kp) or 'cliff' (model: an official CLIFF checkpoint path)."""
    if backend == "embedded":
        return load_keypoint_regressor(model or BUILTIN_KP)
    if backend == "cliff":
        if not model or model.startswith("builtin:"):
            raise InputError("regress.backend 'cliff' needs regress.model: the path of a CLIFF checkpoint")
        return CliffRegressor(Path(model).expanduser(), device)
    raise InputError(f"unknown regress backend {backend!r}; available: embedded, cliff")
