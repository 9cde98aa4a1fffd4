"""YOLOX in PyTorch, module for module as Megvii's YOLOX, so official and ByteTrack checkpoints load.

Official checkpoints are `{"model": state_dict}` (`module.` prefixes from DataParallel are stripped);
YOLOX-Nano..X differ only in depth/width multipliers and Nano's depthwise convolutions, and ByteTrack's
are the same networks with one class. The variant and the number of classes are read off the state
dict's shapes, so any of them loads without naming it. Inference output is the raw per-anchor tensor
(cx, cy, w, h before the grid decode, objectness and class probabilities after their sigmoid), the same
as the ONNX exports, and goes through the same pre/post-processing (tasks/models/yolox_onnx.py).

Architecture (Ge et al. 2021, github Megvii-BaseDetection/YOLOX yolox/models/): CSPDarknet backbone
(Focus stem, dark2-5 with CSP layers, SPP), PAFPN neck, decoupled head per stride 8, 16, 32.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tasks import InputError
from tasks.files import file_sha256, torch_state
from tasks.models.yolox_onnx import YoloxDetector

# name: (depth, width, depthwise); stem channels = int(64 * width) identify them in a state dict
VARIANTS = {
    "nano": (0.33, 0.25, True),
    "tiny": (0.33, 0.375, False),
    "s": (0.33, 0.50, False),
    "m": (0.67, 0.75, False),
    "l": (1.0, 1.0, False),
    "x": (1.33, 1.25, False),
}
IN_CHANNELS = (256, 512, 1024)


class BaseConv(nn.Module):
    """Conv2d (no bias) -> BatchNorm (eps 1e-3, momentum 0.03) -> SiLU."""

    def __init__(self, cin: int, cout: int, ksize: int, stride: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ksize, stride, (ksize - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConv(nn.Module):
    """Depthwise BaseConv then pointwise BaseConv."""

    def __init__(self, cin: int, cout: int, ksize: int, stride: int = 1) -> None:
        super().__init__()
        self.dconv = BaseConv(cin, cin, ksize, stride, groups=cin)
        self.pconv = BaseConv(cin, cout, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pconv(self.dconv(x))


def _conv(depthwise: bool) -> type[nn.Module]:
    return DWConv if depthwise else BaseConv


class Focus(nn.Module):
    """Space-to-depth (2x2 pixels -> 4 channels, YOLOX's order) then a BaseConv."""

    def __init__(self, cin: int, cout: int, ksize: int = 1) -> None:
        super().__init__()
        self.conv = BaseConv(cin * 4, cout, ksize, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tl, tr = x[..., ::2, ::2], x[..., ::2, 1::2]
        bl, br = x[..., 1::2, ::2], x[..., 1::2, 1::2]
        return self.conv(torch.cat((tl, bl, tr, br), dim=1))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, shortcut: bool, expansion: float, depthwise: bool) -> None:
        super().__init__()
        hidden = int(cout * expansion)
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.conv2 = _conv(depthwise)(hidden, cout, 3, 1)
        self.use_add = shortcut and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class CSPLayer(nn.Module):
    def __init__(self, cin: int, cout: int, n: int, shortcut: bool = True, depthwise: bool = False) -> None:
        super().__init__()
        hidden = int(cout * 0.5)
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.conv2 = BaseConv(cin, hidden, 1, 1)
        self.conv3 = BaseConv(2 * hidden, cout, 1, 1)
        self.m = nn.Sequential(*[Bottleneck(hidden, hidden, shortcut, 1.0, depthwise) for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.conv1(x), self.conv2(x)  # YOLOX's order (matters for exported graphs' layer order)
        return self.conv3(torch.cat((self.m(x1), x2), dim=1))


class SPPBottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, kernels: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        hidden = cin // 2
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.m = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in kernels])
        self.conv2 = BaseConv(hidden * (len(kernels) + 1), cout, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [m(x) for m in self.m], dim=1))


class CSPDarknet(nn.Module):
    def __init__(self, depth: float, width: float, depthwise: bool) -> None:
        super().__init__()
        conv = _conv(depthwise)
        c, d = int(width * 64), max(round(depth * 3), 1)
        self.stem = Focus(3, c, ksize=3)
        self.dark2 = nn.Sequential(conv(c, c * 2, 3, 2), CSPLayer(c * 2, c * 2, d, depthwise=depthwise))
        self.dark3 = nn.Sequential(
            conv(c * 2, c * 4, 3, 2), CSPLayer(c * 4, c * 4, d * 3, depthwise=depthwise)
        )
        self.dark4 = nn.Sequential(
            conv(c * 4, c * 8, 3, 2), CSPLayer(c * 8, c * 8, d * 3, depthwise=depthwise)
        )
        self.dark5 = nn.Sequential(
            conv(c * 8, c * 16, 3, 2),
            SPPBottleneck(c * 16, c * 16),
            CSPLayer(c * 16, c * 16, d, shortcut=False, depthwise=depthwise),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.dark2(self.stem(x))
        c3 = self.dark3(x)
        c4 = self.dark4(c3)
        return c3, c4, self.dark5(c4)


class YOLOPAFPN(nn.Module):
    def __init__(self, depth: float, width: float, depthwise: bool) -> None:
        super().__init__()
        conv = _conv(depthwise)
        c0, c1, c2 = (int(c * width) for c in IN_CHANNELS)
        n = round(3 * depth)
        self.backbone = CSPDarknet(depth, width, depthwise)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c2, c1, 1, 1)
        self.C3_p4 = CSPLayer(2 * c1, c1, n, False, depthwise)
        self.reduce_conv1 = BaseConv(c1, c0, 1, 1)
        self.C3_p3 = CSPLayer(2 * c0, c0, n, False, depthwise)
        self.bu_conv2 = conv(c0, c0, 3, 2)
        self.C3_n3 = CSPLayer(2 * c0, c1, n, False, depthwise)
        self.bu_conv1 = conv(c1, c1, 3, 2)
        self.C3_n4 = CSPLayer(2 * c1, c2, n, False, depthwise)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x2, x1, x0 = self.backbone(x)
        fpn0 = self.lateral_conv0(x0)
        f = self.C3_p4(torch.cat([self.upsample(fpn0), x1], 1))
        fpn1 = self.reduce_conv1(f)
        p3 = self.C3_p3(torch.cat([self.upsample(fpn1), x2], 1))
        p4 = self.C3_n3(torch.cat([self.bu_conv2(p3), fpn1], 1))
        p5 = self.C3_n4(torch.cat([self.bu_conv1(p4), fpn0], 1))
        return p3, p4, p5


class YOLOXHead(nn.Module):
    def __init__(self, num_classes: int, width: float, depthwise: bool) -> None:
        super().__init__()
        conv = _conv(depthwise)
        h = int(256 * width)
        self.stems = nn.ModuleList([BaseConv(int(c * width), h, 1, 1) for c in IN_CHANNELS])
        self.cls_convs = nn.ModuleList(
            [nn.Sequential(conv(h, h, 3, 1), conv(h, h, 3, 1)) for _ in IN_CHANNELS]
        )
        self.reg_convs = nn.ModuleList(
            [nn.Sequential(conv(h, h, 3, 1), conv(h, h, 3, 1)) for _ in IN_CHANNELS]
        )
        self.cls_preds = nn.ModuleList([nn.Conv2d(h, num_classes, 1) for _ in IN_CHANNELS])
        self.reg_preds = nn.ModuleList([nn.Conv2d(h, 4, 1) for _ in IN_CHANNELS])
        self.obj_preds = nn.ModuleList([nn.Conv2d(h, 1, 1) for _ in IN_CHANNELS])

    def forward(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        outs = []
        for k, x in enumerate(feats):
            x = self.stems[k](x)
            cls = self.cls_preds[k](self.cls_convs[k](x))
            reg_feat = self.reg_convs[k](x)
            reg, obj = self.reg_preds[k](reg_feat), self.obj_preds[k](reg_feat)
            outs.append(torch.cat([reg, obj.sigmoid(), cls.sigmoid()], 1).flatten(2))
        return torch.cat(outs, 2).permute(0, 2, 1)  # (B, anchors, 5 + C), undecoded boxes


class YOLOX(nn.Module):
    """x (B, 3, H, W) float BGR 0-255 (H, W multiples of 32) -> (B, A, 5 + C) raw outputs."""

    def __init__(self, variant: str = "nano", num_classes: int = 80) -> None:
        super().__init__()
        depth, width, depthwise = VARIANTS[variant]
        self.variant, self.num_classes = variant, num_classes
        self.backbone = YOLOPAFPN(depth, width, depthwise)
        self.head = YOLOXHead(num_classes, width, depthwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def infer_variant(state: dict[str, torch.Tensor]) -> tuple[str, int]:
    """(variant, num_classes) of a YOLOX state dict, from its tensor shapes."""
    try:
        stem = state["backbone.backbone.stem.conv.conv.weight"].shape[0]
        classes = state["head.cls_preds.0.weight"].shape[0]
    except KeyError as e:
        raise InputError(f"not a YOLOX state dict: no {e.args[0]}") from None
    depthwise = any(k.startswith("backbone.backbone.dark2.0.dconv") for k in state)
    n = len({k.split(".")[5] for k in state if k.startswith("backbone.backbone.dark2.1.m.")})
    for name, (depth, width, dw) in VARIANTS.items():
        if int(64 * width) == stem and dw == depthwise and max(round(depth * 3), 1) == n:
            return name, classes
    raise InputError(
        f"YOLOX state dict with stem width {stem}, depthwise {depthwise}, depth {n} matches no variant"
    )


class YoloxTorch(YoloxDetector):
    """A YOLOX checkpoint in PyTorch with YoloxOnnx's interface: RGB uint8 images -> person boxes."""

    def __init__(self, path: Path, size: int = 416, device: str = "cpu") -> None:
        state = torch_state(path, "detector checkpoint")
        variant, classes = infer_variant(state)
        model = YOLOX(variant, classes)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            bad = f"missing {missing[:3]}, unexpected {unexpected[:3]}"
            raise InputError(f"{path}: YOLOX-{variant} checkpoint does not fit: {bad}")
        if size % 32:
            raise InputError(f"YOLOX input size must be a multiple of 32, got {size}")
        self.model = model.eval().to(device)
        self.batched = device != "cpu"
        self.device, self.size = device, (size, size)
        self.name, self.sha256, self.variant, self.num_classes = (
            str(path),
            file_sha256(path),
            variant,
            classes,
        )

    @staticmethod
    def load(path: str, size: int = 416, device: str = "cpu") -> YoloxTorch:
        return _load_cached(path, size, device)

    @torch.inference_mode()
    def raw(self, batch: np.ndarray) -> np.ndarray:
        """batch (B, 3, h, w) float32 letterboxed -> (B, A, 5 + C) raw network output."""
        return self.model(torch.from_numpy(batch).to(self.device)).float().cpu().numpy()


@lru_cache(maxsize=2)
def _load_cached(path: str, size: int, device: str) -> YoloxTorch:
    return YoloxTorch(Path(path).expanduser(), size, device)
