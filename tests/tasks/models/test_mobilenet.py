"""MobileNetV2 features in torchvision's layout, with RSC-Net band weights."""

from __future__ import annotations

import torch

from tasks.files import checked_builtin, torch_state
from tasks.models.embedded import IMAGENET_FEATURES
from tasks.models.mobilenet import (
    InvertedResidual,
    ResolutionAwareMobileNet,
    band_of,
    mobilenet_v2_features,
)


def test_layout_is_torchvision_mobilenet_v2_features() -> None:
    full = mobilenet_v2_features(18)
    # torchvision mobilenet_v2(): 3,504,872 parameters, of which the classifier holds 1280 * 1000 + 1000.
    assert sum(p.numel() for p in full.parameters()) == 3_504_872 - 1_281_000
    assert len(full.state_dict()) == 312
    names = list(full.state_dict())
    assert names[:2] == ["0.0.weight", "0.1.weight"]
    assert "1.conv.3.weight" in names and "17.conv.7.running_var" in names
    assert names[-1] == "18.1.num_batches_tracked"


def test_the_shipped_imagenet_features_load_key_for_key() -> None:
    state = torch_state(checked_builtin(*IMAGENET_FEATURES), "features")
    net = ResolutionAwareMobileNet(last=13)
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert missing == ["alpha"] and unexpected == []
    assert len(state) == 234 and net.out_channels == 96
    # ImageNet statistics, not a fresh initialisation
    assert not torch.allclose(net.features[0][1].running_var, torch.ones(32))


def test_band_of_follows_rsc_net_ranges() -> None:
    b = torch.tensor([24.0, 39.9, 40.0, 63.0, 64.0, 127.0, 128.0, 223.0, 224.0, 1000.0])
    assert band_of(b).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_band_weights_start_as_plain_mobilenet_and_act_per_band() -> None:
    torch.manual_seed(0)
    net = ResolutionAwareMobileNet(last=6).eval()
    n_short = sum(isinstance(m, InvertedResidual) and m.shortcut for m in net.features)
    assert net.alpha.shape == (n_short, 5) and n_short == 3  # blocks 3, 5, 6
    x = torch.randn(2, 3, 64, 48)
    b = torch.tensor([30.0, 300.0])  # bands 0 and 4
    with torch.no_grad():
        y0 = net(x, b)
        assert torch.allclose(y0, net.features(x), atol=1e-6)
        net.alpha[:, 0] = 0.0  # the band of the first sample only
        y1 = net(x, b)
    scale = y0.abs().max()
    assert (y1[0] - y0[0]).abs().max() > 0.05 * scale
    assert (y1[1] - y0[1]).abs().max() < 1e-5 * scale
