"""CLIFF modules: official key layout, checkpoint round trip, 6D rotations, mean parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import roma
import torch

from tasks import InputError
from tasks.models.cliff import (
    Cliff,
    load_cliff,
    mean_params,
    rot6d_to_rotmat,
    rotmat_to_rot6d,
    save_official,
)
from tests.conftest import one_line_error

FIXTURE = Path(__file__).resolve().parents[2] / "data" / "cliff_official_keys.json"


def _shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def res50() -> Cliff:
    torch.manual_seed(0)
    return Cliff("res50").eval()


def test_res50_state_dict_is_the_official_one(res50: Cliff) -> None:
    official = json.loads(FIXTURE.read_text())["resnet50"]
    assert _shapes(res50) == official


def test_hr48_regressor_keys_are_the_official_ones() -> None:
    official = json.loads(FIXTURE.read_text())["hrnet_w48"]
    assert _shapes(Cliff("hr48")) == official


def test_official_layout_checkpoint_round_trips(res50: Cliff, tmp_path: Path) -> None:
    path = tmp_path / "cliff_res50.pt"
    save_official(res50, path)
    assert all(k.startswith("module.") for k in torch.load(path, weights_only=True)["model"])
    loaded = load_cliff(path)
    assert loaded.backbone == "res50"
    for k, v in res50.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x, info = torch.randn(2, 3, 256, 192), torch.randn(2, 3)
    with torch.no_grad():
        for a, b in zip(res50(x, info), loaded(x, info), strict=True):
            assert torch.equal(a, b)


def test_wrong_checkpoints_give_one_line_errors(res50: Cliff, tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert "cannot read CLIFF checkpoint" in one_line_error(InputError, load_cliff, tmp_path / "junk.pt")
    torch.save({"model": {"fc.weight": torch.zeros(2)}}, tmp_path / "other.pt")
    assert "not a CLIFF state dict" in one_line_error(InputError, load_cliff, tmp_path / "other.pt")
    state = res50.state_dict()
    state["decpose.weight"] = torch.zeros(10, 1024)
    del state["init_cam"]
    torch.save({"model": state}, tmp_path / "cut.pt")
    msg = one_line_error(InputError, load_cliff, tmp_path / "cut.pt")
    assert "missing ['init_cam']" in msg and "decpose.weight" in msg
    save_official(res50, tmp_path / "r.pt")
    assert "asked for" in one_line_error(InputError, load_cliff, tmp_path / "r.pt", "hr48")


def test_6d_layout_is_spins() -> None:
    # SPIN/CLIFF: x.view(3, 2) -> columns a1, a2; b1 = a1 / |a1|, b2 = a2 minus its b1 part, normalised.
    x = torch.tensor([1.0, 0.0, 0.0, 2.0, 0.0, 0.0])  # a1 = (1, 0, 0), a2 = (0, 2, 0)
    assert torch.allclose(rot6d_to_rotmat(x), torch.eye(3))
    x = torch.tensor([0.0, 1.0, 3.0, 1.0, 0.0, 0.0])  # a1 = (0, 3, 0), a2 = (1, 1, 0)
    r = rot6d_to_rotmat(x)
    assert torch.allclose(r[:, 0], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.allclose(r[:, 1], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(r[:, 2], torch.tensor([0.0, 0.0, -1.0]))  # b1 x b2


def test_6d_and_axis_angle_round_trip() -> None:
    torch.manual_seed(1)
    aa = torch.nn.functional.normalize(torch.randn(100, 3), dim=1) * torch.rand(100, 1) * 3.0
    r = roma.rotvec_to_rotmat(aa)
    back = rot6d_to_rotmat(rotmat_to_rot6d(r))
    assert torch.allclose(back, r, atol=1e-6)
    assert torch.allclose(roma.rotmat_to_rotvec(back), aa, atol=1e-4)
    noisy = rotmat_to_rot6d(r) + 0.1 * torch.randn(100, 6)
    out = rot6d_to_rotmat(noisy)
    assert torch.allclose(out @ out.transpose(-1, -2), torch.eye(3).expand(100, 3, 3), atol=1e-5)
    assert torch.allclose(torch.det(out), torch.ones(100), atol=1e-5)


def test_mean_parameters_stand_upright_facing_the_camera() -> None:
    r = rot6d_to_rotmat(mean_params()["init_pose"].reshape(24, 6))
    root = r[0]
    # OpenCV camera (y down, z forward): body up (+y) is up in the image (-y), its front (+z) faces us.
    assert torch.allclose(root @ torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)
    assert torch.allclose(root @ torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)
    assert torch.allclose(r[1:], torch.eye(3).expand(23, 3, 3), atol=1e-6)


def test_untrained_regressor_starts_at_the_mean(res50: Cliff) -> None:
    with torch.no_grad():
        _, betas, cam = res50(torch.zeros(1, 3, 256, 192), torch.zeros(1, 3), n_iter=0)
    assert torch.allclose(cam, torch.tensor([[0.9, 0.0, 0.0]]))
    assert torch.equal(betas, torch.zeros(1, 10))
