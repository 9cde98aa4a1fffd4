"""CLIFF (Li et al., ECCV 2022): SMPL regression from a person crop plus where the crop lies in the image.

Our own modules whose state dicts are those of the official CLIFF checkpoints (huawei-noah/noah-research
CLIFF, `torch.load(p)["model"]`, `module.` stripped): `encoder.*` (ResNet-50 in torchvision layout, or
HRNet-W48 from tasks/models/hrnet.py), `fc1`, `fc2`, `decpose`, `decshape`, `deccam` and the buffers
`init_pose` (1, 144), `init_shape` (1, 10), `init_cam` (1, 3). The key list is checked against the
official definitions in tests/data/cliff_official_keys.json.

`IterativeRegressor` is the part every regressor of this project shares (CLIFF and the embedded one in
tasks/models/embedded.py): from a feature vector and the CLIFF bbox info, 3 iterations of
fc1 -> fc2 -> deltas starting from the mean parameters; 6D rotations -> matrices by Gram-Schmidt.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import roma
import torch
from torch import nn

from tasks import InputError
from tasks.files import torch_state

if TYPE_CHECKING:
    from tasks.regress import BoxInputs

N_JOINTS = 24
NPOSE, NSHAPE, NCAM, NBBOX = N_JOINTS * 6, 10, 3, 3
CROP_HW = (256, 192)  # CLIFF's crop: rows, cols
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3). The 6 numbers are the first two COLUMNS of the matrix interleaved
    row by row (x.view(3, 2)), as SPIN and CLIFF lay them out; Gram-Schmidt (Zhou et al. 2019)."""
    return roma.special_gramschmidt(x.reshape(*x.shape[:-1], 3, 2))


def rotmat_to_rot6d(r: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6), the inverse of rot6d_to_rotmat on rotations."""
    return r[..., :2].reshape(*r.shape[:-2], 6)


def mean_params(body_pose_aa: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """Starting parameters for a regressor trained here: a person upright and facing the camera in
    the OpenCV camera frame (global orient = 180 degrees about x), body pose `body_pose_aa` (23, 3)
    axis-angle (default zeros), mean shape, crop camera (0.9, 0, 0) (SPIN's mean scale)."""
    aa = np.zeros((N_JOINTS, 3), np.float32)
    aa[0] = (math.pi, 0.0, 0.0)
    if body_pose_aa is not None:
        aa[1:] = np.asarray(body_pose_aa, np.float32).reshape(23, 3)
    pose6d = rotmat_to_rot6d(roma.rotvec_to_rotmat(torch.from_numpy(aa))).reshape(1, NPOSE)
    return {
        "init_pose": pose6d.float(),
        "init_shape": torch.zeros(1, NSHAPE),
        "init_cam": torch.tensor([[0.9, 0.0, 0.0]]),
    }


class IterativeRegressor(nn.Module):
    """features (N, F) + bbox info (N, 3) -> SMPL rotations, shape and crop camera, iteratively
    refined from the mean parameters (HMR/SPIN/CLIFF). Subclasses provide `features`."""

    def __init__(self, feat_num: int, hidden: int = 1024) -> None:
        super().__init__()
        self.fc1 = nn.Linear(feat_num + NBBOX + NPOSE + NSHAPE + NCAM, hidden)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop2 = nn.Dropout()
        self.decpose = nn.Linear(hidden, NPOSE)
        self.decshape = nn.Linear(hidden, NSHAPE)
        self.deccam = nn.Linear(hidden, NCAM)
        for layer in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(layer.weight, gain=0.01)  # start at the mean parameters
        for name, value in mean_params().items():
            self.register_buffer(name, value)

    def regress(
        self, feat: torch.Tensor, bbox_info: torch.Tensor, n_iter: int = 3
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """feat (N, F), bbox_info (N, 3) -> rotmat (N, 24, 3, 3), betas (N, 10), cam (N, 3) (s, tx, ty)."""
        n = feat.shape[0]
        pose = self.init_pose.expand(n, -1)
        shape = self.init_shape.expand(n, -1)
        cam = self.init_cam.expand(n, -1)
        for _ in range(n_iter):
            x = torch.cat([feat, bbox_info, pose, shape, cam], 1)
            x = self.drop2(self.fc2(self.drop1(self.fc1(x))))
            pose = self.decpose(x) + pose
            shape = self.decshape(x) + shape
            cam = self.deccam(x) + cam
        return rot6d_to_rotmat(pose.reshape(n, N_JOINTS, 6)), shape, cam


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """(N, 3, H, W) ImageNet-normalised RGB -> (N, 2048) average-pooled features (torchvision layout,
    no fc; CLIFF pools its 8x6 map of a 256x192 crop, which adaptive pooling equals there)."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck(cin, planes, stride=2 if i > 0 and j == 0 else 1))
                cin = planes * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


def _encoder(backbone: str) -> nn.Module:
    if backbone == "res50":
        return ResNet50()
    if backbone == "hr48":
        from tasks.models.hrnet import hrnet_w48

        return hrnet_w48()
    raise InputError(f"unknown CLIFF backbone {backbone!r}; available: res50, hr48")


class Cliff(IterativeRegressor):
    """crops (N, 3, 256, 192) ImageNet-normalised RGB + bbox info (N, 3) -> rotmat, betas, crop cam."""

    def __init__(self, backbone: str = "res50") -> None:
        super().__init__(feat_num=2048)
        self.backbone = backbone
        self.encoder = _encoder(backbone)
        for m in self.encoder.modules():  # CLIFF's initialisation (He normal, BN at identity)
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def forward(
        self, x: torch.Tensor, bbox_info: torch.Tensor, n_iter: int = 3
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.regress(self.encoder(x), bbox_info, n_iter)


def infer_backbone(state: dict[str, torch.Tensor]) -> str:
    """'res50' or 'hr48' from a CLIFF state dict's keys."""
    if "encoder.layer4.0.conv1.weight" in state:
        return "res50"
    if any(k.startswith("encoder.stage4.") for k in state):
        return "hr48"
    raise InputError("not a CLIFF state dict: no encoder.layer4 (ResNet-50) or encoder.stage4 (HRNet-W48)")


def load_cliff(path: Path, backbone: str | None = None) -> Cliff:
    """An official CLIFF checkpoint (or one in the same layout) as an eval-mode Cliff; the backbone is
    read off the keys unless given. One-line InputError when the file does not fit."""
    state = torch_state(path, "CLIFF checkpoint")
    found = infer_backbone(state)
    if backbone is not None and backbone != found:
        raise InputError(f"{path}: a CLIFF-{found} checkpoint, but backbone {backbone!r} was asked for")
    model = Cliff(found)
    mine = model.state_dict()
    missing = [k for k in mine if k not in state]
    unexpected = [k for k in state if k not in mine]
    wrong = [k for k in mine if k in state and state[k].shape != mine[k].shape]
    if missing or unexpected or wrong:
        raise InputError(
            f"{path}: CLIFF-{found} checkpoint does not fit: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, wrong shape {wrong[:3]}"
        )
    model.load_state_dict(state)
    return model.eval()


def save_official(model: nn.Module, path: Path) -> None:
    """Write `model` as the official training script does: {"model": state dict with `module.`}."""
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)


class NormalisedCrops(nn.Module):
    """A network whose first input is ImageNet-normalised crops (CLIFF, the image-mode embedded
    regressor), taking them uint8 (N, 256, 192, 3) instead: a frame's crops stay uint8 in memory
    (147 KB a person) and are normalised per batch as the network runs."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)

    def forward(
        self, crops: torch.Tensor, *rest: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.net((crops.permute(0, 3, 1, 2).float() - self.mean) / self.std, *rest)


class CliffRegressor:
    """An official-layout CLIFF checkpoint as a tasks/regress.py Regressor (keypoints unused)."""

    uses_image = True

    def __init__(self, path: Path, device: str = "cpu") -> None:
        from tasks.files import file_sha256

        self.model = load_cliff(path).to(device)
        self.device, self.name, self.sha256 = device, str(path), file_sha256(path)

    def predict(
        self, crops: torch.Tensor | None, keypoints: torch.Tensor, info: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if crops is None:
            raise ValueError("CLIFF needs the crops")
        out = self.model(crops.to(self.device), info.to(self.device))
        return tuple(t.float().cpu() for t in out)  # type: ignore[return-value]

    def finetunable(
        self, crops: torch.Tensor | None, x: BoxInputs
    ) -> tuple[tuple[torch.Tensor, ...], nn.Module]:
        """The Regressor interface: the CLIFF network (on the CPU) on (uint8 crops, bbox info)."""
        if crops is None:
            raise ValueError("CLIFF needs the crops")
        return (crops, x.info), NormalisedCrops(self.model.cpu())
