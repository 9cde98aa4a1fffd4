"""The regressor this project trains itself (`python -m pipeline train regressor`), a tasks/regress.py
Regressor (CLIFF's is in tasks/models/cliff.py).

Keypoints mode (`builtin:embedded-kp`): the person's 2D keypoints (COCO-17, in box-normalised units
(x - c) / b, with confidence; joints under `min_conf` are zeroed, as 3DCrowdNet zeroes unknown joints)
go through a small MLP; CLIFF's bbox info and the iterative regressor of tasks/models/cliff.py turn the
feature into SMPL pose, shape and a crop camera. No image is read, so there is no synthetic-to-real
image gap: the network is trained entirely on synthetic people of the shipped body model
(tasks/train_regressor.py) and its betas belong to that body model's shape space.

Image + keypoints mode (`builtin:embedded-img`): the same keypoint path, plus the person's crop (the
regress stage's 256x192 CLIFF crop, resized to 128x96) through ImageNet MobileNetV2 features up to block
13 (tasks/models/mobilenet.py, RSC-Net band weights per shortcut block) with the keypoints fused as
Gaussian heatmaps after block 3 (stride 4), as 3DCrowdNet fuses them with early image features; the
image feature is added to the keypoint feature through a layer that starts at zero, so training starts
from the keypoints-mode network and the image only adds what it learns to add.

A weight file is a torch state dict; its manifest (JSON beside it) records how it was made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tasks import InputError
from tasks.files import model_file, torch_state
from tasks.models.cliff import IterativeRegressor, NormalisedCrops
from tasks.models.mobilenet import ResolutionAwareMobileNet

if TYPE_CHECKING:
    from tasks.regress import BoxInputs

N_KP = 17
WEIGHTS = Path(__file__).parent / "weights"
BUILTIN_KP = "builtin:embedded-kp"
BUILTIN_IMG = "builtin:embedded-img"
BUILTINS: dict[str, tuple[Path, str]] = {
    BUILTIN_KP: (
        WEIGHTS / "embedded_kp.pt",
        "890191ac31999e4607f3bce0cf3a954cac37475155a298f5fb002a08471c79eb",
    ),
    BUILTIN_IMG: (
        WEIGHTS / "embedded_img.pt",
        "d139ec44df55bcf3e9aa76d2c08090599ec041cd5124f1861d822de722d7792c",
    ),
}
# ImageNet MobileNetV2 features[0..13] (torchvision layout), the image branch's starting weights.
IMAGENET_FEATURES = (
    WEIGHTS / "mobilenetv2_features13.pt",
    "1eb0ac380ab3af13e23aac52cece3a61a945a6bb16461f97de802ab9ac6c8fea",
)


class _Residual(nn.Module):
    """x (N, W) -> x + MLP(x): two pre-activation (LayerNorm, ReLU) linear layers."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.LayerNorm(width), nn.ReLU(), nn.Linear(width, width),
            nn.LayerNorm(width), nn.ReLU(), nn.Linear(width, width),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class KeypointRegressor(IterativeRegressor):
    """keypoints (N, 17, 3) box-normalised x, y and confidence + bbox info (N, 3) -> rotmat
    (N, 24, 3, 3), betas (N, 10), crop cam (N, 3).

    CLIFF's iterative regressor is linear in its feature (no activation between fc1 and fc2), so the
    encoder carries all the depth there is: `blocks` residual blocks (0: the first weights' plain
    three-layer MLP)."""

    uses_image = False

    def __init__(
        self, width: int = 512, min_conf: float = 0.2, dropout: float = 0.1, blocks: int = 0
    ) -> None:
        super().__init__(feat_num=width, hidden=width)
        self.drop1.p = self.drop2.p = dropout
        self.min_conf, self.blocks = min_conf, blocks
        if blocks:
            self.encoder = nn.Sequential(
                nn.Linear(N_KP * 3, width), *(_Residual(width) for _ in range(blocks)), nn.LayerNorm(width)
            )
        else:
            self.encoder = nn.Sequential(
                nn.Linear(N_KP * 3, width), nn.ReLU(),
                nn.Linear(width, width), nn.ReLU(),
                nn.Linear(width, width),
            )  # fmt: skip
        self.name, self.sha256 = "untrained", ""

    def features(self, keypoints: torch.Tensor) -> torch.Tensor:
        known = (keypoints[..., 2:] >= self.min_conf).float()
        return self.encoder((keypoints * known).flatten(1))

    def forward(
        self, keypoints: torch.Tensor, bbox_info: torch.Tensor, n_iter: int = 3
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.regress(self.features(keypoints), bbox_info, n_iter)

    def predict(
        self, crops: torch.Tensor | None, keypoints: torch.Tensor, info: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The Regressor interface (tasks/regress.py): inputs on the CPU, moved to the model's
        device; outputs back on the CPU."""
        d = self.init_cam.device
        out = self._run(None if crops is None else crops.to(d), keypoints.to(d), info.to(d), b.to(d))
        return tuple(t.float().cpu() for t in out)  # type: ignore[return-value]

    def _run(
        self, crops: torch.Tensor | None, keypoints: torch.Tensor, info: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self(keypoints, info)

    def finetunable(
        self, crops: torch.Tensor | None, x: BoxInputs
    ) -> tuple[tuple[torch.Tensor, ...], nn.Module]:
        """The Regressor interface: the network itself on (keypoints, bbox info)."""
        return (x.keypoints, x.info), self


class ImageRegressor(KeypointRegressor):
    """crops (N, 3, 256, 192) ImageNet-normalised + keypoints (N, 17, 3) box units + bbox info (N, 3)
    + crop heights b (N,) source px -> rotmat (N, 24, 3, 3), betas (N, 10), crop cam (N, 3)."""

    uses_image = True
    IMAGE_HW = (128, 96)
    FUSE_AFTER = 3  # features[3]: 24 channels at stride 4
    HEAT_HW = (IMAGE_HW[0] // 4, IMAGE_HW[1] // 4)

    def __init__(
        self, width: int = 512, min_conf: float = 0.2, dropout: float = 0.1, blocks: int = 0,
        heat_sigma: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__(width, min_conf, dropout, blocks)
        self.heat_sigma = heat_sigma  # heatmap cells
        self.backbone = ResolutionAwareMobileNet(last=13)
        self.fuse = nn.Conv2d(24 + N_KP, 24, 1, bias=False)
        with torch.no_grad():  # starts as the identity on the image channels
            self.fuse.weight.zero_()
            self.fuse.weight[:, :24, 0, 0] = torch.eye(24)
        c = self.backbone.out_channels
        rows, cols = self.IMAGE_HW[0] // 16, self.IMAGE_HW[1] // 16
        self.reduce = nn.Sequential(nn.Conv2d(c, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.project = nn.Sequential(nn.Linear(16 * rows * cols, 256), nn.ReLU(), nn.Linear(256, width))
        nn.init.zeros_(self.project[2].weight)
        nn.init.zeros_(self.project[2].bias)

    def heatmaps(self, keypoints: torch.Tensor) -> torch.Tensor:
        """keypoints (N, 17, 3) box units (x - c) / b -> (N, 17, 32, 24) Gaussians over the crop (which
        spans x in [-0.375, 0.375], y in [-0.5, 0.5] box units), zero for joints under min_conf."""
        rows, cols = self.HEAT_HW
        v = (torch.arange(rows, dtype=keypoints.dtype, device=keypoints.device) + 0.5) / rows - 0.5
        u = ((torch.arange(cols, dtype=keypoints.dtype, device=keypoints.device) + 0.5) / cols - 0.5) * 0.75
        s = self.heat_sigma / rows
        dx = (u.view(1, 1, 1, cols) - keypoints[..., 0, None, None]) / s
        dy = (v.view(1, 1, rows, 1) - keypoints[..., 1, None, None]) / s
        known = (keypoints[..., 2] >= self.min_conf).to(keypoints.dtype)[..., None, None]
        return torch.exp(-0.5 * (dx**2 + dy**2)) * known

    def forward(  # type: ignore[override]
        self, crops: torch.Tensor, keypoints: torch.Tensor, bbox_info: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = nn.functional.interpolate(crops, size=self.IMAGE_HW, mode="bilinear", antialias=True)
        x = self.backbone.run(x, b, 0, self.FUSE_AFTER + 1)
        x = self.fuse(torch.cat([x, self.heatmaps(keypoints)], 1))
        x = self.backbone.run(x, b, self.FUSE_AFTER + 1)
        image = self.project(self.reduce(x).flatten(1))
        return self.regress(self.features(keypoints) + image, bbox_info)

    def _run(
        self, crops: torch.Tensor | None, keypoints: torch.Tensor, info: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if crops is None:
            raise ValueError("the image-mode regressor needs the crops")
        return self(crops, keypoints, info, b)

    def finetunable(
        self, crops: torch.Tensor | None, x: BoxInputs
    ) -> tuple[tuple[torch.Tensor, ...], nn.Module]:
        """The Regressor interface: the network on (uint8 crops, keypoints, bbox info, crop heights)."""
        if crops is None:
            raise ValueError("the image-mode regressor needs the crops")
        return (crops, x.keypoints, x.info, x.b), NormalisedCrops(self)

    def load_imagenet(self) -> None:
        """Backbone weights from the shipped ImageNet MobileNetV2 features (the training start)."""
        from tasks.files import checked_builtin

        state = torch_state(checked_builtin(*IMAGENET_FEATURES), "ImageNet MobileNetV2 features")
        self.backbone.load_state_dict(state, strict=False)


def manifest_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def load_embedded(spec: str) -> KeypointRegressor:
    """`builtin:embedded-kp`, `builtin:embedded-img` (checksum-checked) or the path of weights written
    by the trainer; the mode (keypoints or image) is that of the weights."""
    path, name, sha256 = model_file(spec, BUILTINS, "regressor")
    manifest = manifest_path(path)
    config: dict[str, Any] = {}
    if manifest.is_file():
        config = dict(json.loads(manifest.read_text()).get("model", {}))
    config.pop("mode", None)
    state = {k: v.float() for k, v in torch_state(path, "regressor weights").items()}
    # The encoder's shape is in the state itself: weights saved without a manifest load too.
    if "encoder.0.weight" in state:
        config["width"] = state["encoder.0.weight"].shape[0]
    config["blocks"] = len({k.split(".")[1] for k in state if k.startswith("encoder.") and ".body." in k})
    image = any(k.startswith("backbone.") for k in state)
    model = (ImageRegressor if image else KeypointRegressor)(**config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(
            f"{path}: not embedded-regressor weights: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    model.name, model.sha256 = name, sha256
    return model.eval()
