"""`crowd.method: global`: one crowd on its floors, for the whole frame. Settings: crowd.global.

Who stands on which floor is judged once, from the network's first prediction (tasks/support.py):
people whose 2D legs are folded (seated, riding, crouching) stand on none; the others stand on the
level (the main floor, or a second one such as a terrace) that gives them a plausible stature, or on
none when their feet are far from every level (in the air, on a vehicle); a frame where too few
people agree on a level gets a warning and no crowd term. The levels' up direction is refreshed every
`refresh` steps, their heights above the camera (hence the crowd's scale) are held at the first
prediction's (`height`: no term observes a crowd's scale, so refitted it drifts with the optimiser's
path). Each step optimises a batch drawn from the whole frame with a robust (Huber) spread of the
feet of the people on a level about it (AdamW, a linear warm-up, then cosine annealing); a final pass
predicts everyone with the final weights, and the snap scales each person on a level about the
camera onto it, within the stature prior.
When the focal is known (given or estimated), the up direction comes from the image instead
(ground_normal): the network's depths err by a few percent more at the back of a crowd than at the
front, and a plane fitted to its feet tilts with them; the people's head-over-feet lines in the image
do not depend on the network.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from schemas.scene import CrowdConfig, GlobalConfig
from tasks.crowd.method import CrowdMethod, Log, begin, data_terms
from tasks.crowd.people import Fit, People, Progress
from tasks.models.body import BodyModel
from tasks.quality import HEAD, feet, fit_plane, robust_ground
from tasks.support import Levels, snap, standing_pose, steadiest_levels, support_labels

STATURE_M = 1.6  # a typical ankle-to-head length: keeps the global spread in metres-like units


# The budget of steps: 'auto' spends a third of the network evaluations that CrowdRec's procedure
# as this project first ran it (752d528) planned for a frame: everyone once, then batches of 50 (a
# last one under 8 joined to the one before), 260 iterations for the first and 100 for each later
# batch, plus a final pass. Fixed here so that global's steps do not follow crowdrec's settings.
REFERENCE_BATCH, REFERENCE_MIN_LAST, REFERENCE_ITERATIONS = 50, 8, (260, 100)


def reference_evaluations(n: int) -> int:
    """The network evaluations of the reference procedure above for n people."""
    first = n if n < REFERENCE_BATCH + REFERENCE_MIN_LAST else REFERENCE_BATCH
    first_iterations, later_iterations = REFERENCE_ITERATIONS
    return n + first * (first_iterations + 1) + (n - first) * (later_iterations + 1)


def global_steps(n: int, cfg: GlobalConfig) -> int:
    """cfg.steps, or for 'auto' the most steps whose evaluations (everyone at the start, at each plane
    refit and at the end, plus a batch per step) stay within a third of reference_evaluations(n)."""
    if cfg.steps != "auto":
        return int(cfg.steps)
    budget = reference_evaluations(n) / 3
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


_KEPT = " (kept: a refit turning it by more than max_turn_deg was refused)"


class _Ground:
    """The floors the feet are pulled to (tasks/support.py): their up direction given (normal) or
    fitted robustly to the feet; the levels, and who stands on which, judged once from the first
    prediction (pose and plausible statures); a level's height is held at the first prediction's
    (cfg.height 'first': it sets the crowd's scale, which no term observes) or refitted to its
    people's feet at every refresh ('refit')."""

    def __init__(self, cfg: GlobalConfig, normal: np.ndarray | None) -> None:
        self.cfg, self.normal = cfg, normal
        self.levels: Levels | None = None
        self.small = False

    def _up(self, joints: torch.Tensor, on: np.ndarray | None = None) -> tuple[np.ndarray, str]:
        """The up direction and where it came from: the given normal, or the plane fitted to the
        feet of joints (N, 24, 3) m (of the people `on`, when given) unless it leaves the bodies'
        own up by more than cfg.max_angle_deg (a few people, or people in a row, leave a plane
        through their feet free to swing about them), then the bodies' up."""
        if self.normal is not None:
            return np.asarray(self.normal, np.float64), "given"
        j = joints if on is None or on.sum() < 3 else joints[torch.as_tensor(on)]
        body_up = robust_ground(j, self.cfg.max_angle_deg)
        fitted = fit_plane(feet(j), body_up)[:3]
        if float(fitted @ body_up.double().cpu().numpy()) >= math.cos(math.radians(self.cfg.max_angle_deg)):
            return fitted, "the plane of the feet"
        return (
            body_up.double().cpu().numpy(),
            "the bodies' up (the plane of the feet leaves it by more than max_angle_deg)",
        )

    def judge(self, joints: torch.Tensor, statures: np.ndarray, pose: np.ndarray) -> Levels:
        """The levels and everyone's level from the first prediction's joints (N, 24, 3) m, rest-pose
        statures (N,) m and 2D pose judgement (N,) (support.standing_pose)."""
        f = feet(joints).detach().double().cpu().numpy()
        up, source = self._up(joints)
        cfg = self.cfg
        tilt = cfg.max_tilt_deg if self.normal is None else 0.0  # a given normal is not searched
        levels = steadiest_levels(f, up, statures, pose != 0, cfg.small_group, tilt, prior=cfg.stature_prior)
        self.small = self.normal is None and int((pose != 0).sum()) < cfg.small_group
        if float(levels.up @ up) < 1 - 1e-9:
            source += (
                f", turned {math.degrees(math.acos(min(1.0, float(levels.up @ up)))):.0f} deg (small group)"
            )
        self.levels = replace(levels, up_source=source)
        return self.levels

    def refresh(self, joints: torch.Tensor) -> Levels:
        """The levels after the weights moved: the direction refitted to the people on a level (when
        not given; kept when the refit would turn it by more than cfg.max_turn_deg), the heights held
        or refitted (cfg.height); nobody changes level."""
        assert self.levels is not None
        lv = self.levels
        if self.small:  # a small group's up was chosen with its levels; a refit would undo that
            return lv
        on = lv.level >= 0
        up, source = self._up(joints, on)
        if float(up @ lv.up) < math.cos(math.radians(self.cfg.max_turn_deg)):
            up, source = lv.up, lv.up_source.removesuffix(_KEPT) + _KEPT
        heights = lv.heights
        if self.cfg.height == "refit" and len(heights):
            own = -(feet(joints).detach().double().cpu().numpy() @ up)
            heights = np.array([np.median(own[lv.level == k]) for k in range(len(heights))])
        self.levels = Levels(up, heights, lv.level, lv.warning, source)
        return self.levels


def _spread(joints: torch.Tensor, planes: torch.Tensor, huber_m: float) -> torch.Tensor:
    """Huber spread (delta huber_m, m) of the feet of joints (N, 24, 3) about each person's level,
    planes (N, 4) (NaN rows: on no level, left out), measured in units of the people's own stature:
    shrinking the whole crowd towards the camera (smaller bodies, nearer) keeps every reprojection
    and would shrink a spread in metres for free."""
    on = torch.isfinite(planes[:, 0])
    if not bool(on.any()):
        return joints.sum() * 0.0
    j, pl = joints[on], planes[on]
    f = feet(j)
    height = (f * pl[:, :3]).sum(-1) + pl[:, 3]  # signed distance of each person's feet from its level, m
    stature = (j[:, HEAD] - f).norm(dim=-1).median()
    rel = height / stature * STATURE_M
    return nn.functional.huber_loss(rel, torch.zeros_like(rel), delta=huber_m)


def finetune_global(
    model: nn.Module, people: People, body: BodyModel, cfg: GlobalConfig, steps: int, seed: int = 0,
    log: Log | None = None, normal: np.ndarray | None = None, progress: Progress | None = None,
) -> Fit:  # fmt: skip
    """The globally consistent procedure (module docstring) for `steps` steps; `model` is finetuned
    in place. normal (3,), the unit up in the camera frame, fixes the floors' direction
    (ground_normal); else it is fitted to the feet. Who stands on which level is judged from the
    first prediction (tasks/support.py); only they are pulled to their level and snapped to it, and
    without a level (a frame with no consistent floor) the crowd term is off."""
    gen = torch.Generator().manual_seed(seed)
    net, current = begin(model, people, body, progress)
    rotmat0 = current.rotmat
    n = len(people)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = warmup_cosine(opt, steps, cfg.warmup, cfg.min_lr)
    curve: list[float] = []
    ground = _Ground(cfg, normal)
    pose = standing_pose(people.kp.detach().cpu().numpy())
    levels = ground.judge(current.joints, body.statures(current.betas.cpu().numpy()), pose)
    if levels.warning and log:
        log(f"global: {levels.warning}; the crowd term is off")
    device = people.kp.device
    planes = torch.as_tensor(levels.planes(), dtype=torch.float32, device=device)
    w_crowd = cfg.w_crowd if len(levels.heights) else 0.0
    for step in range(steps):
        if step and step % cfg.refresh == 0 and len(levels.heights):
            levels = ground.refresh(net.everyone().joints)
            planes = torch.as_tensor(levels.planes(), dtype=torch.float32, device=device)
        idx = torch.randperm(n, generator=gen)[: cfg.batch]
        out = net(idx)
        spread = _spread(out.joints, planes[idx.to(device)], cfg.huber_m)
        loss = data_terms(out, idx, people, rotmat0, cfg) + cfg.scale * w_crowd * spread / cfg.huber_m
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        curve.append(float(loss.detach()))
    fit = Fit.of(net.everyone())
    if len(levels.heights):
        levels = ground.refresh(fit.joints)
        fit.plane = levels.plane(0)
    fit.curve, fit.evaluations = curve, net.evaluations
    if cfg.snap:
        f = feet(fit.joints).double().cpu().numpy()
        statures = body.statures(fit.betas.cpu().numpy())
        scale, transl, levels = snap(
            f, fit.transl.double().cpu().numpy(), levels, statures, cfg.stature_prior
        )
        like = fit.joints
        fit.scale = torch.as_tensor(scale, dtype=like.dtype, device=like.device)
        new_transl = torch.as_tensor(transl, dtype=like.dtype, device=like.device)
        fit.joints = (fit.joints - fit.transl[:, None]) * fit.scale[:, None, None] + new_transl[:, None]
        fit.transl = new_transl
    fit.levels, fit.support = levels, support_labels(levels, pose)
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

    def planned(self, n: int) -> int:
        g = self.cfg.global_
        steps = global_steps(n, g)
        return 2 * n + steps * min(g.batch, n) + (steps // g.refresh) * n

    def optimise(
        self, model: nn.Module, people: People, body: BodyModel, seed: int, log: Log | None,
        progress: Progress | None = None,
    ) -> Fit:  # fmt: skip
        g = self.cfg.global_
        steps = global_steps(len(people), g)
        return finetune_global(model, people, body, g, steps, seed, log, self.normal, progress)
