"""MobileNetV2 features (Sandler et al. 2018) in torchvision's `mobilenet_v2().features` layout, with
RSC-Net's resolution awareness (Xu et al., ECCV 2020).

Our own module (torchvision is not a dependency); its state dict keys and shapes are those of the
ImageNet weights shipped as tasks/models/weights/mobilenetv2_features.pt (`features.0.0.weight` ...
`features.18.1.num_batches_tracked`, 312 tensors), so they load unchanged.

Resolution awareness: every inverted residual block with an identity shortcut computes
x + alpha[block, band] * F(x), one learnt scalar per block and crop-size band (RSC-Net's bands of the
person's crop height in the source image: >= 224, 128-224, 64-128, 40-64, < 40 px). The alphas start
at 1, where the network is plain MobileNetV2.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s), MobileNetV2 table 2
_SETTINGS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)
)  # fmt: skip
BAND_EDGES = (40.0, 64.0, 128.0, 224.0)  # crop height px; band k holds b in [edge[k-1], edge[k])
N_BANDS = len(BAND_EDGES) + 1


def band_of(b: torch.Tensor) -> torch.Tensor:
    """(N,) crop heights in source-image px -> (N,) band index 0 (< 40 px) ... 4 (>= 224 px)."""
    return torch.bucketize(b, torch.tensor(BAND_EDGES, dtype=b.dtype, device=b.device), right=True)


def _conv_bn(
    cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, relu: bool = True
) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    return [*layers, nn.ReLU6(inplace=True)] if relu else layers


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear projection; `conv` is torchvision's flat Sequential."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers = _conv_bn(cin, hidden, 1) if expand != 1 else []
        layers += _conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += _conv_bn(hidden, cout, 1, relu=False)
        self.conv = nn.Sequential(*layers)
        self.shortcut = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, C, H, W); alpha (N,) the residual branch's weight per sample (shortcut blocks only)."""
        if not self.shortcut:
            return self.conv(x)
        y = self.conv(x)
        return x + (y if alpha is None else alpha.view(-1, 1, 1, 1) * y)


def mobilenet_v2_features(last: int = 18) -> nn.Sequential:
    """torchvision's mobilenet_v2().features[: last + 1] (index 0: stem; 1-17: blocks; 18: 1x1 to 1280)."""
    layers: list[nn.Module] = [nn.Sequential(*_conv_bn(3, 32, 3, 2))]
    cin = 32
    for t, c, n, s in _SETTINGS:
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    layers.append(nn.Sequential(*_conv_bn(cin, 1280, 1)))
    return nn.Sequential(*layers[: last + 1])


class ResolutionAwareMobileNet(nn.Module):
    """MobileNetV2 features up to block `last`, with RSC-Net band weights on its shortcut blocks.

    forward(x (N, 3, H, W) ImageNet-normalised, b (N,) crop height px) -> (N, C, H/s, W/s).
    `stem` is the part before the heatmap fusion point `split` (exclusive): callers may inject extra
    channels there (tasks/models/embedded.py fuses keypoint heatmaps after block 3, stride 4).
    """

    def __init__(self, last: int = 13) -> None:
        super().__init__()
        self.features = mobilenet_v2_features(last)
        n_short = sum(isinstance(m, InvertedResidual) and m.shortcut for m in self.features)
        self.alpha = nn.Parameter(torch.ones(n_short, N_BANDS))
        self.out_channels = next(
            m.num_features for m in reversed(list(self.features.modules())) if isinstance(m, nn.BatchNorm2d)
        )

    def run(self, x: torch.Tensor, b: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Blocks start..stop-1 of `features` on x, with the band weights of crop heights b (N,) px."""
        band = band_of(b)
        k = sum(isinstance(m, InvertedResidual) and m.shortcut for m in self.features[:start])
        for m in self.features[start:stop]:
            if isinstance(m, InvertedResidual) and m.shortcut:
                x = m(x, self.alpha[k, band])
                k += 1
            else:
                x = m(x)
        return x

    def forward(self, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.run(x, b)
