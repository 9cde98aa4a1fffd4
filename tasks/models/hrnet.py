"""HRNet classification backbone (Wang et al. 2019), laid out as CLIFF's HRNet-W48 image encoder.

CLIFF (Li et al. 2022, github huawei-noah/noah-research CLIFF/models/backbones/hrnet/cls_hrnet.py) uses
the ImageNet-classification HRNet of HRNet/HRNet-Image-Classification as its encoder, without the 1000-way
classifier: its output is the 2048-d globally average-pooled feature the regressor reads. This module is
our own implementation of that network whose `state_dict()` has exactly the official keys and shapes, so
`encoder.*` of an official CLIFF checkpoint loads with `strict=True` (pinned by
tests/tasks/models/test_hrnet.py against tests/data/cliff_official_keys.json).

Layout: a stride-4 stem (two 3x3 stride-2 convs) and `layer1` (4 bottlenecks, 256 channels), then stages
2-4 with 2, 3 and 4 parallel branches of C, 2C, 4C, 8C channels (C = 48 for W48) at strides 4-32, each
stage a run of modules that apply 4 basic blocks per branch and then exchange information between all
branches. The classification head widens every branch with one bottleneck (to 128, 256, 512, 1024),
folds the branches into the coarsest one with strided convs, lifts it to 2048 channels and pools.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

# Basic blocks per branch in every module of stages 2-4, and modules per stage (Sun et al.'s W18-W64).
BLOCKS_PER_BRANCH = 4
MODULES_PER_STAGE = (1, 4, 3)
HEAD_CHANNELS = (32, 64, 128, 256)  # bottleneck planes of the head; x4 expansion gives 128..1024
FEATURES = 2048


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """Conv (no bias, 'same' padding) -> BatchNorm [-> ReLU]; the ReLU holds no weights, so the
    parameter keys are `0.weight` and `1.*` either way, as in the official nn.Sequential layers."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut (channels never change inside an HRNet branch)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 expansion), stride 1; a 1x1 projection shortcut when the width changes."""

    expansion = 4

    def __init__(self, cin: int, planes: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        # Optional submodule, so a block without projection has no `downsample.*` keys.
        self.downsample = conv_bn(cin, cout, 1, relu=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + shortcut)


def bottlenecks(cin: int, planes: int, count: int) -> nn.Sequential:
    """`count` bottlenecks; only the first sees `cin` channels, and projects them if needed."""
    cout = planes * Bottleneck.expansion
    return nn.Sequential(*(Bottleneck(cin if i == 0 else cout, planes) for i in range(count)))


def fuse_path(channels: list[int], src: int, dst: int) -> nn.Module:
    """Resample branch `src` to the resolution and width of branch `dst` (strides differ by 2x per step).

    Finer to coarser: one 3x3 stride-2 conv per halving, keeping the source width until the last one,
    which alone has no ReLU because the sum it feeds is rectified afterwards. Coarser to finer: a 1x1 conv
    then nearest-neighbour upsampling. Identity on the diagonal holds no weights, like the official None.
    """
    if src == dst:
        return nn.Identity()
    if src > dst:
        # Flat (conv, bn, upsample) as upstream, so the keys are `0.weight` and `1.*`.
        return nn.Sequential(
            *conv_bn(channels[src], channels[dst], 1, relu=False),
            nn.Upsample(scale_factor=2 ** (src - dst), mode="nearest"),
        )
    steps = dst - src
    return nn.Sequential(
        *(
            conv_bn(channels[src], channels[dst] if k == steps - 1 else channels[src], 3, 2, k < steps - 1)
            for k in range(steps)
        )
    )


class HighResolutionModule(nn.Module):
    """Basic blocks on every branch, then every branch receives the sum of all branches resampled to it."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c) for _ in range(BLOCKS_PER_BRANCH))) for c in channels
        )
        n = len(channels)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(fuse_path(channels, src, dst) for src in range(n)) for dst in range(n)
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        fused = []
        for paths in self.fuse_layers:
            # Summed in branch order, as upstream, so float results match it bit for bit.
            y = paths[0](xs[0])
            for path, x in zip(paths[1:], xs[1:], strict=True):
                y = y + path(x)
            fused.append(torch.relu(y))
        return fused


def transition(prev: list[int], cur: list[int]) -> nn.ModuleList:
    """Adapt the previous stage's branches to the next stage: re-width an existing branch only where the
    width changes (just stage 1's 256 -> C), and grow each new branch from the coarsest previous one with
    3x3 stride-2 convs (one step per new branch in HRNet)."""
    paths: list[nn.Module] = []
    for i, c in enumerate(cur):
        if i < len(prev):
            paths.append(nn.Identity() if prev[i] == c else conv_bn(prev[i], c, 3))
        else:
            steps = i + 1 - len(prev)
            paths.append(
                nn.Sequential(
                    *(conv_bn(prev[-1], c if k == steps - 1 else prev[-1], 3, 2) for k in range(steps))
                )
            )
    return nn.ModuleList(paths)


def head_conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    # Unlike the rest of the network, the head's convs carry a bias (it is in the official checkpoints).
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class HighResolutionNet(nn.Module):
    """HRNet-W`width` image encoder: (N, 3, H, W) float -> (N, 2048), H and W multiples of 32.

    CLIFF feeds 256 x 192 crops, normalised with the ImageNet mean and std; that preprocessing is the
    caller's. There is no classifier: upstream's `classifier` line is commented out, so official
    checkpoints have no such keys.
    """

    def __init__(self, width: int = 48) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.layer1 = bottlenecks(64, 64, BLOCKS_PER_BRANCH)

        channels = [width * 2**i for i in range(4)]
        prev = [64 * Bottleneck.expansion]
        for stage, modules in enumerate(MODULES_PER_STAGE, start=2):
            cur = channels[:stage]
            setattr(self, f"transition{stage - 1}", transition(prev, cur))
            setattr(self, f"stage{stage}", nn.ModuleList(HighResolutionModule(cur) for _ in range(modules)))
            prev = cur

        wide = [h * Bottleneck.expansion for h in HEAD_CHANNELS]
        self.incre_modules = nn.ModuleList(
            bottlenecks(c, h, 1) for c, h in zip(channels, HEAD_CHANNELS, strict=True)
        )
        self.downsamp_modules = nn.ModuleList(head_conv(a, b, 3, 2) for a, b in itertools.pairwise(wide))
        self.final_layer = head_conv(wide[-1], FEATURES, 1, 1)

        # Upstream's init (CLIFF's, and HRNet's own): He-normal over fan-out, BatchNorm at identity.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(f"expected (N, 3, H, W) with H, W multiples of 32, got {tuple(x.shape)}")
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for stage in (2, 3, 4):
            paths: nn.ModuleList = getattr(self, f"transition{stage - 1}")
            # Existing branches pass through; new ones grow from the coarsest branch so far.
            xs = [path(xs[min(i, len(xs) - 1)]) for i, path in enumerate(paths)]
            for module in getattr(self, f"stage{stage}"):
                xs = module(xs)

        y = self.incre_modules[0](xs[0])
        for incre, down, x_i in zip(self.incre_modules[1:], self.downsamp_modules, xs[1:], strict=True):
            y = incre(x_i) + down(y)
        y = self.final_layer(y)
        # Upstream's reduction (a full-size average pool, not mean()) keeps the output bit-identical.
        return F.avg_pool2d(y, kernel_size=y.shape[2:]).flatten(1)


def hrnet_w48() -> HighResolutionNet:
    """CLIFF's encoder (cls_hrnet_w48_sgd_lr5e-2_wd1e-4_bs32_x100.yaml): C = 48, 2048-d output."""
    return HighResolutionNet(48)
