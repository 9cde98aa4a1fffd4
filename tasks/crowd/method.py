"""What a crowd method is: one way of finetuning the regressor's weights on a frame's people.

A method owns its settings section of `crowd:` in scene.yaml (schemas/scene.py), what it decides
before optimising (`prepare`, e.g. the ground plane's direction, with the report fields that say so)
and its optimisation (`optimise`). Methods are listed by name in tasks/crowd/registry.py.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from schemas.scene import CrowdConfig, LossWeights
from tasks.crowd.people import Fit, Net, NetOutput, People, Progress
from tasks.crowd.terms import pose_init_loss, shape_loss
from tasks.models.body import BodyModel
from tasks.quality import keypoint_errors

Log = Callable[[str], None]


class CrowdMethod(ABC):
    """A crowd method for one frame, built from the scene's crowd settings."""

    def __init__(self, cfg: CrowdConfig) -> None:
        self.cfg = cfg

    def prepare(self, people: People, image_wh: tuple[int, int], focal_known: bool) -> dict[str, Any]:
        """Decide what the method needs before optimising, from the frame's people, its size (px) and
        whether its focal is known (given or estimated, not the diagonal guess); returns the fields
        this adds to the frame's crowd report."""
        return {}

    def planned(self, n: int) -> int:
        """About how many people-evaluations optimising n people takes (the progress bar's total)."""
        return n

    @abstractmethod
    def optimise(
        self, model: nn.Module, people: People, body: BodyModel, seed: int, log: Log | None,
        progress: Progress | None = None,
    ) -> Fit:  # fmt: skip
        """Finetune `model` (a copy, in place, parameters trainable) on the people; their final fit."""


def finetune(
    model: nn.Module, people: People, body: BodyModel, method: CrowdMethod, seed: int = 0,
    log: Log | None = None, progress: Progress | None = None,
) -> Fit:  # fmt: skip
    """Finetune a COPY of `model` on one frame's people with `method` (the model itself is unchanged)."""
    work = copy.deepcopy(model).to(people.kp.device)
    for p in work.parameters():
        p.requires_grad_(True)
    return method.optimise(work, people, body, seed, log, progress)


def begin(
    model: nn.Module, people: People, body: BodyModel, progress: Progress | None = None
) -> tuple[Net, NetOutput]:
    """Eval mode (batch-norm statistics frozen), and everyone predicted once by the weights as given:
    the first prediction the pose term holds people to."""
    model.eval()
    net = Net(model, people, body, progress)
    return net, net.everyone()


def data_terms(
    out: NetOutput, idx: torch.Tensor, people: People, rotmat0: torch.Tensor, cfg: LossWeights
) -> torch.Tensor:
    """The keypoint + pose + shape terms of the people `idx`, weighted (cfg.w_keypoints, w_pose, w_shape)
    and scaled (cfg.scale); rotmat0 (N, 24, 3, 3): everyone's first prediction."""
    p = people
    data = (
        # CrowdRec eq. 10: the mean over people of their keypoint errors
        cfg.w_keypoints
        * keypoint_errors(out.coco, p.kp[idx], p.centre[idx], p.b[idx], p.focal[idx], p.pp[idx]).mean()
        + cfg.w_pose * pose_init_loss(out.rotmat, rotmat0[idx])
        + cfg.w_shape * shape_loss(out.betas)
    )
    return cfg.scale * data
