"""A frame's people as the crowd step sees them, the network run over them, and what a finetune returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import roma
import torch
from torch import nn

from tasks.models.body import BodyModel
from tasks.regress import Regressor, box_inputs, cam_crop_to_full, cut_crops
from tasks.support import Levels


@dataclass(frozen=True)
class People:
    """The fixed per-person inputs of one frame: net_inputs, tensors whose row i is person i's network
    input (e.g. keypoints in box units and bbox info); kp (N, 17, 3) px + confidence; centre (N, 2) and
    b (N,) crop px; focal (N,) px; pp (N, 2) principal point px."""

    net_inputs: tuple[torch.Tensor, ...]
    kp: torch.Tensor
    centre: torch.Tensor
    b: torch.Tensor
    focal: torch.Tensor
    pp: torch.Tensor

    def __len__(self) -> int:
        return len(self.kp)

    def to(self, device: str | torch.device) -> People:
        return People(
            tuple(t.to(device) for t in self.net_inputs),
            *(t.to(device) for t in (self.kp, self.centre, self.b, self.focal, self.pp)),
        )


class NetOutput(NamedTuple):
    """The network and body model on some people: rotmat (N, 24, 3, 3), betas (N, 10), crop cam (N, 3),
    transl (N, 3) m, joints (N, 24, 3) and coco (N, 17, 3) camera frame m (translation included)."""

    rotmat: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor
    transl: torch.Tensor
    joints: torch.Tensor
    coco: torch.Tensor


@dataclass
class Fit:
    """Per person: rotmat (N, 24, 3, 3), betas (N, 10), cam (N, 3), transl (N, 3) m, joints (N, 24, 3)
    m; the ground plane (4,) n . X + d = 0 with n the unit up (None if not fitted); loss curve per
    iteration; network evaluations (people forwarded); scale (N,): joints = scale * body(pose, betas)
    + transl (GigaCrowd's scale_smpl), set when the people were snapped to their floor; the floors and
    each person's support when the method judged them."""

    rotmat: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor
    transl: torch.Tensor
    joints: torch.Tensor
    plane: np.ndarray | None = None
    curve: list[float] = field(default_factory=list)
    evaluations: int = 0
    scale: torch.Tensor | None = None  # (N,) body scale about the camera (the snap); None: all 1
    levels: Levels | None = None  # the floors found and who stands on which (tasks/support.py)
    support: np.ndarray | None = None  # (N,) support labels (tasks/support.py); None: not judged

    @classmethod
    def of(cls, out: NetOutput) -> Fit:
        """The people of a network output, detached."""
        return cls(
            out.rotmat.detach(),
            out.betas.detach(),
            out.cam.detach(),
            out.transl.detach(),
            out.joints.detach(),
        )


# Told the number of people forwarded so far (the crowd step's progress, in people-evaluations).
Progress = Callable[[int], None]


class Net:
    """Runs the network on a subset of people and poses their bodies; counts the people forwarded
    (and tells `progress` the count after each forward)."""

    def __init__(
        self, model: nn.Module, people: People, body: BodyModel, progress: Progress | None = None
    ) -> None:
        self.model, self.people, self.body, self.progress = model, people, body, progress
        self.evaluations = 0

    def __call__(self, idx: torch.Tensor) -> NetOutput:
        p = self.people
        rotmat, betas, cam = self.model(*(t[idx] for t in p.net_inputs))
        self.evaluations += len(idx)
        if self.progress is not None:
            self.progress(self.evaluations)
        transl = cam_crop_to_full(cam, p.centre[idx], p.b[idx], p.focal[idx], p.pp[idx])
        aa = roma.rotmat_to_rotvec(rotmat).reshape(len(idx), 72)
        out = self.body(aa[:, :3], aa[:, 3:], betas, transl)
        return NetOutput(rotmat, betas, cam, transl, out.joints, out.coco17)

    @torch.no_grad()
    def everyone(self, chunk: int = 1024) -> NetOutput:
        n = len(self.people)
        parts = [self(torch.arange(i, min(i + chunk, n))) for i in range(0, n, chunk)]
        return NetOutput(*(torch.cat(t) for t in zip(*parts, strict=True)))


def predict_all(model: nn.Module, people: People, body: BodyModel) -> Fit:
    """Everyone through the network as it is (the 'before finetuning' result)."""
    model.eval()
    net = Net(model, people, body)
    fit = Fit.of(net.everyone())
    fit.evaluations = net.evaluations
    return fit


def keypoint_people(
    boxes: np.ndarray, keypoints: np.ndarray, focal: float, pp: tuple[float, float]
) -> People:
    """People for a keypoints-mode regressor (tasks/models/embedded.py): boxes (N, 4) px, keypoints
    (N, 17, 3) px + confidence, the frame's focal and principal point (px)."""
    x = box_inputs(boxes, keypoints, focal, pp)
    return People((x.keypoints, x.info), x.kp_px, x.centre, x.b, x.focal, x.pp)


def crowd_inputs(
    regressor: Regressor,
    levels: list[Any] | None,
    boxes: np.ndarray,
    keypoints: np.ndarray,
    focal: float,
    pp: tuple[float, float],
) -> tuple[People, nn.Module]:
    """The people of one frame and the network to finetune on them, as the regressor declares them
    (Regressor.finetunable). Crops, for a regressor that reads the image, are cut from `levels` (the
    frame's pyramid) as the regress stage cuts them and kept uint8. boxes (N, 4) px, keypoints
    (N, 17, 3) px + confidence, focal and principal point px."""
    x = box_inputs(boxes, keypoints, focal, pp)
    crops = None
    if regressor.uses_image:
        if levels is None:
            raise ValueError("a regressor that reads the image needs the frame's pyramid")
        crops = torch.from_numpy(cut_crops(levels, boxes))
    net_inputs, net = regressor.finetunable(crops, x)
    return People(net_inputs, x.kp_px, x.centre, x.b, x.focal, x.pp), net
