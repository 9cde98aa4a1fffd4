"""Our HRNet-W48 has the official CLIFF encoder's state-dict layout and yields 2048-d features."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tasks.models.hrnet import HighResolutionNet, hrnet_w48

FIXTURE = Path(__file__).resolve().parents[2] / "data" / "cliff_official_keys.json"


@pytest.fixture(scope="module")
def model() -> HighResolutionNet:
    return hrnet_w48().eval()


@pytest.fixture(scope="module")
def official_encoder() -> dict[str, list[int]]:
    keys = json.loads(FIXTURE.read_text())["hrnet_w48"]
    return {k.removeprefix("encoder."): v for k, v in keys.items() if k.startswith("encoder.")}


def test_state_dict_is_the_official_encoders(
    model: HighResolutionNet, official_encoder: dict[str, list[int]]
) -> None:
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(ours) ^ set(official_encoder)) == []
    assert ours == official_encoder
    # A checkpoint with exactly the official keys loads strictly (no head such as `classifier`).
    dtypes = {k: v.dtype for k, v in model.state_dict().items()}
    fake = {k: torch.zeros(shape, dtype=dtypes[k]) for k, shape in official_encoder.items()}
    hrnet_w48().load_state_dict(fake, strict=True)


def test_forward_gives_2048_features(model: HighResolutionNet) -> None:
    with torch.no_grad():
        y = model(torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(0)))
    assert y.shape == (2, 2048)
    assert torch.isfinite(y).all()
    assert (y >= 0).all()  # average of a ReLU output


def test_rejects_sizes_the_fusion_cannot_align(model: HighResolutionNet) -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.zeros(1, 3, 250, 192))
