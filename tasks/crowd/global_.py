"""`crowd.method: global`: one crowd, one ground plane for the whole frame. Settings: crowd.global.

The plane is fitted to everyone in the frame, robustly (directions far from the crowd's are dropped;
the offset is a median); its direction is refreshed every `refresh` steps, its offset (the camera's
height above the ground, hence the crowd's scale) is held at the network's first prediction (`height`:
no term observes a crowd's scale, so refitted it drifts with the optimiser's path). Each step optimises
a batch drawn from the whole frame against it with a robust (Huber) spread of the feet about the plane
(AdamW, a linear warm-up, then cosine annealing); a final pass predicts everyone with the final weights.
When the focal is known (given or estimated), the plane's direction comes from the image instead
(ground_normal): the network's depths err by a few percent more at the back of a crowd than at the
front, and a plane fitted to its feet tilts with them; the people's head-over-feet lines in the image
do not depend on the network.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from schemas.scene import CrowdConfig, CrowdrecConfig, GlobalConfig
from tasks.crowd.crowdrec import planned_evaluations
from tasks.crowd.method import CrowdMethod, Log, begin, data_terms
from tasks.crowd.people import Fit, People
from tasks.crowd.terms import snap_to_plane
from tasks.models.body import BodyModel
from tasks.quality import HEAD, feet, fit_plane, robust_ground

STATURE_M = 1.6  # a typical ankle-to-head length: keeps the global spread in metres-like units


def global_steps(n: int, cfg: GlobalConfig) -> int:
    """cfg.steps, or for 'auto' the most steps whose evaluations (everyone at the start, at each plane
    refit and at the end, plus a batch per step) stay within a third of what the published crowdrec
    procedure (its settings as published, CrowdrecConfig's defaults) plans for n people."""
    if cfg.steps != "auto":
        return int(cfg.steps)
    budget = planned_evaluations(n, CrowdrecConfig()) / 3
    return max(1, int((budget - 2 * n) / (min(cfg.batch, n) + n / cfg.refresh)))


def ground_normal(
    cfg: GlobalConfig, people: People, image_wh: tuple[int, int], focal_known: bool
) -> tuple[np.ndarray | None, str]:
    """The fixed ground direction for finetune_global, (3,) unit up in the camera frame, or None to fit
    it to the people's feet; and a line saying which (cfg.normal; focal_known: the frame's focal was
    given or estimated, not the diagonal guess). From the image: tasks/camera.estimate_camera with the
    frame's focal held, over the people's keypoints (N, 17, 3) px; refused when they do not determine
    it (too few people with a head and an ankle). The image gives the people's vertical, which is the
    ground's normal on level ground (CrowdRec's eq. 7 assumes the same)."""
    from tasks.camera import estimate_camera

    if cfg.normal == "people" or (cfg.normal == "auto" and not focal_known):
        return None, "people (fitted to the finetuned feet)"
    focal = float(people.focal[0])
    pp = (float(people.pp[0, 0]), float(people.pp[0, 1]))
    est = estimate_camera(people.kp.detach().cpu().double().numpy(), image_wh, pp, focal=focal)
    if est is None:
        return None, "people (the keypoints do not determine the camera)"
    return (
        np.asarray(est.plane[:3], np.float64),
        f"camera (pitch {est.pitch_deg:.2f} deg, roll {est.roll_deg:.2f} deg, {est.people} people)",
    )


def warmup_cosine(
    opt: torch.optim.Optimizer, steps: int, warmup: int, min_lr: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """The global method's learning rate at step s (0-based; lr: the optimiser's): lr (s + 1) / w for
    s < w = min(warmup, steps // 2), then cosine annealing from lr to min_lr over the remaining steps.
    Why the warm-up: Adam's first updates move every weight by about lr whatever the size of its
    gradient (its moment estimates start from a single sample), which throws the network off its
    keypoint fit, and a small crowd's hundred-odd steps do not win it back."""
    w = min(warmup, steps // 2)
    lr = opt.param_groups[0]["lr"]

    def factor(s: int) -> float:
        if s < w:
            return (s + 1) / w
        t = min((s - w) / max(1, steps - w), 1.0)
        return (min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * t))) / lr

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


class _Ground:
    """The plane the feet are pulled to: its direction given (normal) or fitted robustly to the feet,
    its offset the median height of the feet along it; with cfg.height 'first' the offset is held at
    the first prediction's (it sets the crowd's scale, which no term observes)."""

    def __init__(self, cfg: GlobalConfig, normal: np.ndarray | None, device: torch.device) -> None:
        self.cfg = cfg
        self.up = None if normal is None else torch.as_tensor(normal, dtype=torch.float32, device=device)
        self.first: torch.Tensor | None = None

    def fit(self, joints: torch.Tensor) -> torch.Tensor:
        """(4,) the plane n . X + d = 0 of joints (N, 24, 3) m; the first call fixes the held offset."""
        f = feet(joints)
        if self.up is not None:
            plane = torch.cat([self.up, -(f @ self.up).median().reshape(1)])
        else:
            up = robust_ground(joints, self.cfg.max_angle_deg)
            plane = torch.tensor(fit_plane(f, up), dtype=torch.float32, device=f.device)
        if self.first is None:
            self.first = plane
        return torch.cat([plane[:3], self.first[3:]]) if self.cfg.height == "first" else plane


def _spread(joints: torch.Tensor, plane: torch.Tensor, huber_m: float) -> torch.Tensor:
    """Huber spread (delta huber_m, m) of the feet of joints (N, 24, 3) about plane (4,), measured in
    units of the people's own stature: shrinking the whole crowd towards the camera (smaller bodies,
    nearer) keeps every reprojection and would shrink a spread in metres for free."""
    f = feet(joints)
    height = f @ plane[:3] + plane[3]  # signed distance of each person's feet from the plane, m
    stature = (joints[:, HEAD] - f).norm(dim=-1).median()
    rel = height / stature * STATURE_M
    return nn.functional.huber_loss(rel, torch.zeros_like(rel), delta=huber_m)


def finetune_global(
    model: nn.Module, people: People, body: BodyModel, cfg: GlobalConfig, steps: int, seed: int = 0,
    log: Log | None = None, normal: np.ndarray | None = None,
) -> Fit:  # fmt: skip
    """The globally consistent procedure (module docstring) for `steps` steps; `model` is finetuned
    in place. normal (3,), the unit up in the camera frame, fixes the plane's direction (ground_normal);
    then only its offset is fitted to the feet (their median height along it): with cfg.height
    'first' once, to the network's first prediction, and held; with 'refit' at every refresh."""
    gen = torch.Generator().manual_seed(seed)
    net, current = begin(model, people, body)
    rotmat0 = current.rotmat
    n = len(people)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = warmup_cosine(opt, steps, cfg.warmup, cfg.min_lr)
    curve: list[float] = []
    ground = _Ground(cfg, normal, people.kp.device)
    plane = ground.fit(current.joints)
    for step in range(steps):
        if step and step % cfg.refresh == 0:
            plane = ground.fit(net.everyone().joints)
        idx = torch.randperm(n, generator=gen)[: cfg.batch]
        out = net(idx)
        spread = _spread(out.joints, plane, cfg.huber_m)
        loss = data_terms(out, idx, people, rotmat0, cfg) + cfg.scale * cfg.w_crowd * spread / cfg.huber_m
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        curve.append(float(loss.detach()))
    fit = Fit.of(net.everyone())
    fit.plane = ground.fit(fit.joints).double().cpu().numpy()
    fit.curve, fit.evaluations = curve, net.evaluations
    if cfg.snap:
        fit.scale = snap_to_plane(
            fit.joints, torch.as_tensor(fit.plane, dtype=fit.joints.dtype, device=fit.joints.device)
        )
        fit.transl = fit.transl * fit.scale[:, None]
        fit.joints = fit.joints * fit.scale[:, None, None]
    if log:
        log(f"global: {steps} steps over {n} people, loss {curve[-1] if curve else float('nan'):.4g}")
    return fit


class Global(CrowdMethod):
    """One ground plane for the whole frame, settings crowd.global. `normal` (3,), the ground's unit up
    in the camera frame, fixes the plane's direction; prepare() takes it from the image when
    crowd.global.normal says so, else it is fitted to the people's feet."""

    def __init__(self, cfg: CrowdConfig, normal: np.ndarray | None = None) -> None:
        super().__init__(cfg)
        self.normal = normal

    def prepare(self, people: People, image_wh: tuple[int, int], focal_known: bool) -> dict[str, Any]:
        self.normal, source = ground_normal(self.cfg.global_, people, image_wh, focal_known)
        return {"ground_normal": source, "ground_offset": self.cfg.global_.height}

    def optimise(self, model: nn.Module, people: People, body: BodyModel, seed: int, log: Log | None) -> Fit:
        g = self.cfg.global_
        return finetune_global(model, people, body, g, global_steps(len(people), g), seed, log, self.normal)
