"""The reduce step: finetune the regressor network's WEIGHTS on one frame so that its people stand on
one ground plane while their projections keep fitting their 2D keypoints (reference/method.md section 4).

Two procedures over the same loss terms:
- `crowdrec`, the published one: batches of 50 people in order (a remainder under 8 joins the previous
  batch); the first batch starts from the pretrained weights and runs 260 iterations, each later batch
  continues from the current weights for 100; each batch's ground direction and spread see only its own
  people, and its people's results come from the weights at the end of its own optimisation;
- `global`: one crowd. The ground plane is fitted to everyone in the frame, robustly (directions far
  from the crowd's are dropped; the offset is a median); its direction is refreshed every `refresh`
  steps, its offset (the camera's height above the ground, hence the crowd's scale) is held at the
  network's first prediction (`height`: no term observes a crowd's scale, and refitted it drifted by
  up to 4%); each step optimises a batch drawn from the whole frame against it with a robust
  (Huber) spread of the feet about the plane (AdamW, a linear warm-up, then cosine annealing); a final
  pass predicts everyone with the final weights.
  When the focal is known (given or estimated), the plane's direction comes from the image instead
  (ground_normal): the network's depths err by a few percent more at the back of a crowd than at the
  front, a plane fitted to its feet tilts by 0.4-0.8 degrees with them, and at the grazing angles of
  a crowd photograph that tilt leaves the farthest people 6% too far (benchmarks/crowd.py, README);
  the people's head-over-feet lines in the image do not depend on the network.

Conventions: camera frame x right, y down, z forward, metres; keypoints in full-resolution pixels,
compared in box units (x - c) / b; SMPL joints 0 pelvis, 7/8 ankles, 15 head.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import roma
import torch
from torch import nn

from schemas.scene import CrowdConfig, CrowdrecConfig, GlobalConfig
from tasks.models.body import BodyModel
from tasks.models.cliff import IMAGENET_MEAN, IMAGENET_STD
from tasks.regress import cam_crop_to_full, project, to_crop_units

PELVIS, L_ANKLE, R_ANKLE, HEAD = 0, 7, 8, 15
STATURE_M = 1.6  # a typical ankle-to-head length: keeps the global spread in metres-like units


def ground_direction(joints: torch.Tensor) -> torch.Tensor:
    """joints (N, 24, 3) camera frame m (translation included) -> (3,) unit "up" of the crowd:
    the mean of each person's unit vector from the ankles' midpoint to the head (CrowdRec eq. 7)."""
    feet = (joints[:, L_ANKLE] + joints[:, R_ANKLE]) / 2
    up = joints[:, HEAD] - feet
    mean = (up / up.norm(dim=-1, keepdim=True).clamp(min=1e-9)).mean(0)
    return mean / mean.norm().clamp(min=1e-9)


def crowd_loss(joints: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Standard deviation (unbiased, m) of the pelvis heights along `up` (3,) (CrowdRec eq. 8):
    zero when every pelvis lies on one plane orthogonal to `up`."""
    return (joints[:, PELVIS] @ up).std()


def keypoint_errors(
    coco: torch.Tensor,
    kp: torch.Tensor,
    centre: torch.Tensor,
    b: torch.Tensor,
    focal: torch.Tensor,
    pp: torch.Tensor,
) -> torch.Tensor:
    """(N,) each person's confidence-weighted squared reprojection error in box units, averaged over
    17 joints and both coordinates. coco (N, 17, 3) camera frame m; kp (N, 17, 3) x, y px and
    confidence; centre (N, 2), b (N,) crop px; focal (N,) px; pp (N, 2) principal point px."""
    pred = to_crop_units(project(coco, focal, pp), centre, b)
    target = to_crop_units(kp[..., :2], centre, b)
    return (kp[..., 2:] * (pred - target) ** 2).mean(dim=(1, 2))


def pose_init_loss(rotmat: torch.Tensor, rotmat0: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the rotation matrices (N, 24, 3, 3) from the first prediction."""
    return ((rotmat - rotmat0) ** 2).mean()


def shape_loss(betas: torch.Tensor) -> torch.Tensor:
    """Mean squared betas (N, 10): shapes stay near the mean."""
    return (betas**2).mean()


def batches(n: int, size: int = 50, min_last: int = 8) -> list[np.ndarray]:
    """People 0..n-1 in batches of `size`; a last batch under `min_last` joins the one before
    (107 -> 50 + 57)."""
    starts = list(range(0, n, size))
    if not starts:
        return []
    if len(starts) > 1 and n - starts[-1] < min_last:
        starts.pop()
    ends = [*starts[1:], n]
    return [np.arange(s, e) for s, e in zip(starts, ends, strict=True)]


class StopRule:
    """After the planned iterations, keep going until the loss is below the k-th smallest seen before
    it (CrowdRec), or `max_extra` more iterations have run."""

    def __init__(self, k: int = 5, max_extra: int = 200) -> None:
        self.k, self.max_extra = k, max_extra
        self.seen: list[float] = []

    def done(self, loss: float, iteration: int, planned: int) -> bool:
        """True when optimisation may stop after `iteration` (0-based) whose loss was `loss`."""
        smallest = sorted(self.seen)[: self.k]
        self.seen.append(loss)
        if iteration + 1 < planned:
            return False
        if iteration + 1 >= planned + self.max_extra:
            return True
        return len(smallest) >= self.k and loss < smallest[-1]


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


@dataclass
class Fit:
    """Per person: rotmat (N, 24, 3, 3), betas (N, 10), cam (N, 3), transl (N, 3) m, joints (N, 24, 3)
    m; the ground plane (4,) n . X + d = 0 with n the unit up (None if not fitted); loss curve per
    iteration; network evaluations (people forwarded); scale (N,): joints = scale * body(pose, betas)
    + transl (GigaCrowd's scale_smpl), set when the people were snapped to the plane."""

    rotmat: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor
    transl: torch.Tensor
    joints: torch.Tensor
    plane: np.ndarray | None = None
    curve: list[float] = field(default_factory=list)
    evaluations: int = 0
    scale: torch.Tensor | None = None  # (N,) body scale about the camera (snap_to_plane); None: all 1


class _Net:
    """Runs the network on a subset of people and poses their bodies."""

    def __init__(self, model: nn.Module, people: People, body: BodyModel) -> None:
        self.model, self.people, self.body = model, people, body
        self.evaluations = 0

    def __call__(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p = self.people
        rotmat, betas, cam = self.model(*(t[idx] for t in p.net_inputs))
        self.evaluations += len(idx)
        transl = cam_crop_to_full(cam, p.centre[idx], p.b[idx], p.focal[idx], p.pp[idx])
        aa = roma.rotmat_to_rotvec(rotmat).reshape(len(idx), 72)
        out = self.body(aa[:, :3], aa[:, 3:], betas, transl)
        return rotmat, betas, cam, transl, out.joints, out.coco17

    @torch.no_grad()
    def everyone(self, chunk: int = 1024) -> tuple[torch.Tensor, ...]:
        n = len(self.people)
        parts = [self(torch.arange(i, min(i + chunk, n))) for i in range(0, n, chunk)]
        return tuple(torch.cat(t) for t in zip(*parts, strict=True))


def _begin(
    model: nn.Module, people: People, body: BodyModel, seed: int
) -> tuple[_Net, tuple[torch.Tensor, ...]]:
    """Seeded, eval mode (batch-norm statistics frozen), and everyone predicted once by the weights
    as given: the first prediction the pose term holds people to."""
    torch.manual_seed(seed)
    model.eval()
    net = _Net(model, people, body)
    return net, net.everyone()


def _terms(
    net_out: tuple[torch.Tensor, ...],
    idx: torch.Tensor,
    people: People,
    rotmat0: torch.Tensor,
    cfg: CrowdrecConfig | GlobalConfig,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(keypoint + pose + shape terms, weighted and scaled; joints; coco) for the people `idx`."""
    rotmat, betas, _, _, joints, coco = net_out
    p = people
    data = (
        # CrowdRec eq. 10: the mean over people of their keypoint errors
        cfg.w_keypoints
        * keypoint_errors(coco, p.kp[idx], p.centre[idx], p.b[idx], p.focal[idx], p.pp[idx]).mean()
        + cfg.w_pose * pose_init_loss(rotmat, rotmat0[idx])
        + cfg.w_shape * shape_loss(betas)
    )
    return cfg.scale * data, joints, coco


def _fit(out: tuple[torch.Tensor, ...]) -> Fit:
    rotmat, betas, cam, transl, joints, _ = (t.detach() for t in out)
    return Fit(rotmat, betas, cam, transl, joints)


def predict_all(model: nn.Module, people: People, body: BodyModel) -> Fit:
    """Everyone through the network as it is (the 'before finetuning' result)."""
    model.eval()
    net = _Net(model, people, body)
    fit = _fit(net.everyone())
    fit.evaluations = net.evaluations
    return fit


def crowdrec_schedule(
    opt: torch.optim.Optimizer, cfg: CrowdrecConfig, first: bool
) -> torch.optim.lr_scheduler.CosineAnnealingWarmRestarts:
    """CrowdRec's learning rate for one batch: cosine annealing from the optimiser's lr to cfg.min_lr
    with warm restarts, the first period cfg.first_period (first batch) or cfg.later_period, each
    next period twice the last."""
    period = cfg.first_period if first else cfg.later_period
    return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=period, T_mult=2, eta_min=cfg.min_lr)


def finetune_crowdrec(
    model: nn.Module, people: People, body: BodyModel, cfg: CrowdrecConfig, seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> Fit:  # fmt: skip
    """The published procedure (module docstring). `model` is finetuned in place (a copy is not made:
    pass a copy to keep the pretrained weights); eval mode, so batch-norm statistics stay frozen."""
    net, start = _begin(model, people, body, seed)
    rotmat0 = start[0]
    n = len(people)
    result = [t.clone() for t in start]
    curve: list[float] = []
    for k, rows in enumerate(batches(n, cfg.batch, cfg.min_last)):
        idx = torch.from_numpy(rows)
        planned = cfg.first_iterations if k == 0 else cfg.later_iterations
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = crowdrec_schedule(opt, cfg, first=k == 0)
        stop = StopRule(cfg.stop_k, cfg.max_extra)
        it = 0
        while True:
            out = net(idx)
            data, joints, _ = _terms(out, idx, people, rotmat0, cfg)
            up = ground_direction(joints)
            loss = data + cfg.scale * cfg.w_crowd * crowd_loss(joints, up)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            curve.append(float(loss.detach()))
            if stop.done(curve[-1], it, planned):
                break
            it += 1
        with torch.no_grad():
            final = net(idx)  # this batch's people from the weights at the end of its optimisation
        for r, t in zip(result, final, strict=True):
            r[idx] = t.detach()
        if log:
            log(f"crowdrec batch {k}: {len(rows)} people, {it + 1} iterations, loss {curve[-1]:.4g}")
    fit = Fit(*result[:5], curve=curve, evaluations=net.evaluations)
    fit.plane = plane_of(fit.joints, ground_direction(fit.joints))
    return fit


def plane_of(joints: torch.Tensor, up: torch.Tensor) -> np.ndarray:
    """(4,) plane n . X + d = 0 with n = up through the median height of the feet (ankle midpoints)."""
    feet = (joints[:, L_ANKLE] + joints[:, R_ANKLE]) / 2
    d = -float((feet @ up).median())
    return np.array([*up.tolist(), d])


def robust_ground(joints: torch.Tensor, max_angle_deg: float) -> torch.Tensor:
    """(3,) the crowd's up from people whose own head-over-feet direction lies within `max_angle_deg`
    of the crowd's mean one (seated, lying, and false detections do not tilt it)."""
    up = ground_direction(joints)
    feet = (joints[:, L_ANKLE] + joints[:, R_ANKLE]) / 2
    own = joints[:, HEAD] - feet
    own = own / own.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    keep = own @ up >= math.cos(math.radians(max_angle_deg))
    return ground_direction(joints[keep]) if int(keep.sum()) >= 3 else up


def fit_plane(points: torch.Tensor, up: torch.Tensor, rounds: int = 3, k: float = 2.5) -> np.ndarray:
    """(4,) robust plane n . X + d = 0 through points (N, 3) m: least squares (the centred points'
    smallest singular direction), refitted `rounds` times without the points farther than k robust
    sigmas (1.4826 MAD); n is oriented along `up` (3,). The plane comes from where the people stand,
    not from how upright the network thinks they are (regressed orientations lean towards the mean)."""
    pts = points.detach().double()
    keep = torch.ones(len(pts), dtype=torch.bool)
    n, d = up.double(), -float((pts @ up.double()).median())
    for _ in range(rounds):
        if int(keep.sum()) < 3:
            break
        sel = pts[keep]
        centre = sel.mean(0)
        n = torch.linalg.svd(sel - centre, full_matrices=False).Vh[-1]
        n = n if float(n @ up.double()) >= 0 else -n
        d = -float(centre @ n)
        r = pts @ n + d
        sigma = 1.4826 * float((r - r[keep].median()).abs()[keep].median()) + 1e-6
        keep = (r - r[keep].median()).abs() <= k * sigma
    return np.array([*n.tolist(), d])


def planned_evaluations(n: int, cfg: CrowdrecConfig) -> int:
    """People the crowdrec procedure forwards for n people before its stop rule adds any: everyone
    once, then each batch once per planned iteration plus its final prediction."""
    parts = batches(n, cfg.batch, cfg.min_last)
    return n + sum(
        len(b) * ((cfg.first_iterations if k == 0 else cfg.later_iterations) + 1) for k, b in enumerate(parts)
    )


def global_steps(n: int, cfg: GlobalConfig, crowdrec: CrowdrecConfig) -> int:
    """cfg.steps, or for 'auto' the most steps whose evaluations (everyone at the start, at each plane
    refit and at the end, plus a batch per step) stay within a third of crowdrec's plan."""
    if cfg.steps != "auto":
        return int(cfg.steps)
    budget = planned_evaluations(n, crowdrec) / 3
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
    gradient (its moment estimates start from a single sample); at lr 5e-4 that throws the network off
    its keypoint fit, and a small crowd's hundred-odd steps do not win it back (benchmarks/crowd.py:
    OKS 0.925 -> 0.936 with 10 steps of warm-up, 100 people, seed 13)."""
    w = min(warmup, steps // 2)
    lr = opt.param_groups[0]["lr"]

    def factor(s: int) -> float:
        if s < w:
            return (s + 1) / w
        t = min((s - w) / max(1, steps - w), 1.0)
        return (min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * t))) / lr

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def finetune_global(
    model: nn.Module, people: People, body: BodyModel, cfg: GlobalConfig, steps: int, seed: int = 0,
    log: Callable[[str], None] | None = None, normal: np.ndarray | None = None,
) -> Fit:  # fmt: skip
    """The globally consistent procedure (module docstring) for `steps` steps; `model` is finetuned
    in place. normal (3,), the unit up in the camera frame, fixes the plane's direction (ground_normal);
    then only its offset is fitted to the feet (their median height along it): with cfg.height
    'first' once, to the network's first prediction, and held; with 'refit' at every refresh."""
    gen = torch.Generator().manual_seed(seed)
    net, current = _begin(model, people, body, seed)
    rotmat0 = current[0]
    n = len(people)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = warmup_cosine(opt, steps, cfg.warmup, cfg.min_lr)
    curve: list[float] = []
    up = None if normal is None else torch.as_tensor(normal, dtype=torch.float32, device=people.kp.device)

    def ground(joints: torch.Tensor) -> torch.Tensor:
        feet = (joints[:, L_ANKLE] + joints[:, R_ANKLE]) / 2
        if up is not None:
            return torch.cat([up, -(feet @ up).median().reshape(1)])
        return torch.tensor(
            fit_plane(feet, robust_ground(joints, cfg.max_angle_deg)), dtype=torch.float32, device=feet.device
        )

    plane = first = ground(current[4])

    def held(plane: torch.Tensor) -> torch.Tensor:
        # The offset is the camera's height above the ground, and it sets the crowd's scale: a crowd
        # scaled about the camera reprojects the same, so no term observes it and refitting it to the
        # finetuned feet lets it drift (median depth 0.964-1.039x the truth after the finetune,
        # 0.989-1.013x before it, true focal, 13 frames, README); held, 0.993-1.011x.
        return torch.cat([plane[:3], first[3:]]) if cfg.height == "first" else plane

    for step in range(steps):
        if step and step % cfg.refresh == 0:
            current = net.everyone()
            plane = held(ground(current[4]))
        idx = torch.randperm(n, generator=gen)[: cfg.batch]
        out = net(idx)
        data, joints, _ = _terms(out, idx, people, rotmat0, cfg)
        feet = (joints[:, L_ANKLE] + joints[:, R_ANKLE]) / 2
        height = feet @ plane[:3] + plane[3]  # signed distance of each person's feet from the plane, m
        # In units of the people's own stature: shrinking the whole crowd towards the camera (smaller
        # bodies, nearer) keeps every reprojection and would shrink a spread in metres for free.
        stature = (joints[:, HEAD] - feet).norm(dim=-1).median()
        rel = height / stature * STATURE_M
        spread = nn.functional.huber_loss(rel, torch.zeros_like(rel), delta=cfg.huber_m)
        loss = data + cfg.scale * cfg.w_crowd * spread / cfg.huber_m
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        curve.append(float(loss.detach()))
    fit = _fit(net.everyone())
    fit.plane = held(ground(fit.joints)).double().cpu().numpy()
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


def snap_to_plane(
    joints: torch.Tensor, plane: torch.Tensor, limits: tuple[float, float] = (0.5, 2.0)
) -> torch.Tensor:
    """(N,) the scale about the camera centre that puts each person's feet (ankle midpoint of joints
    (N, 24, 3), camera frame m) on `plane` (4,) n . X + d = 0: lambda = -d / (n . feet), clipped to
    `limits`; 1 where the feet's ray runs parallel to the plane. Scaling a person about the camera
    centre leaves its image unchanged, so the keypoints fit as before, and moves it along its rays
    to the depth where it stands on the crowd's ground."""
    feet = (joints[:, L_ANKLE] + joints[:, R_ANKLE]) / 2
    along = feet @ plane[:3]
    lam = -plane[3] / torch.where(along.abs() > 1e-9, along, torch.ones_like(along))
    lam = torch.where(along.abs() > 1e-9, lam, torch.ones_like(lam))
    return lam.clamp(*limits)


def finetune(
    model: nn.Module, people: People, body: BodyModel, cfg: CrowdConfig, seed: int = 0,
    log: Callable[[str], None] | None = None, normal: np.ndarray | None = None,
) -> Fit:  # fmt: skip
    """Finetune a COPY of `model` on one frame's people with cfg.method ('crowdrec' or 'global');
    normal: the global method's fixed ground direction (ground_normal), None to fit it."""
    method = cfg.method
    work = copy.deepcopy(model).to(people.kp.device)
    for p in work.parameters():
        p.requires_grad_(True)
    if method == "crowdrec":
        return finetune_crowdrec(work, people, body, cfg.crowdrec, seed, log)
    if method == "global":
        steps = global_steps(len(people), cfg.global_, cfg.crowdrec)
        return finetune_global(work, people, body, cfg.global_, steps, seed, log, normal)
    raise ValueError(f"unknown crowd method {method!r}; available: crowdrec, global")


def keypoint_people(
    boxes: np.ndarray, keypoints: np.ndarray, focal: float, pp: tuple[float, float]
) -> People:
    """People for a keypoints-mode regressor (tasks/models/embedded.py): boxes (N, 4) px, keypoints
    (N, 17, 3) px + confidence, the frame's focal and principal point (px)."""
    from tasks.regress import box_inputs

    x = box_inputs(boxes, keypoints, focal, pp)
    return People((x.keypoints, x.info), x.kp_px, x.centre, x.b, x.focal, x.pp)


@dataclass(frozen=True)
class Quality:
    """Per person: keypoint_error (N,) as keypoint_errors; ground_distance (N,) m, the feet's signed
    distance from `plane` (4,), the robust plane fitted to everyone's feet (n up)."""

    keypoint_error: np.ndarray
    ground_distance: np.ndarray
    plane: np.ndarray


def quality(joints: np.ndarray, coco: np.ndarray, people: People, max_angle_deg: float = 30.0) -> Quality:
    """How well each person fits its keypoints and the crowd's ground. joints (N, 24, 3) and coco
    (N, 17, 3) camera frame m (translation included)."""
    j = torch.as_tensor(joints, dtype=torch.float32)
    c = torch.as_tensor(coco, dtype=torch.float32)
    p = people
    err = keypoint_errors(c, p.kp, p.centre, p.b, p.focal, p.pp).numpy()
    if len(j) < 3:
        return Quality(err, np.full(len(j), np.nan), np.full(4, np.nan))
    feet = (j[:, L_ANKLE] + j[:, R_ANKLE]) / 2
    plane = fit_plane(feet, robust_ground(j, max_angle_deg))
    return Quality(err, feet.double().numpy() @ plane[:3] + plane[3], plane)


class NormalisedCrops(nn.Module):
    """A network whose first input is ImageNet-normalised crops (CLIFF, the image-mode embedded
    regressor), taking them uint8 (N, 256, 192, 3) instead: a frame's crops stay uint8 in memory
    (147 KB a person) and are normalised per batch as the network runs."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)

    def forward(
        self, crops: torch.Tensor, *rest: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.net((crops.permute(0, 3, 1, 2).float() - self.mean) / self.std, *rest)


def crowd_inputs(
    regressor: Any,
    levels: list[object] | None,
    boxes: np.ndarray,
    keypoints: np.ndarray,
    focal: float,
    pp: tuple[float, float],
) -> tuple[People, nn.Module]:
    """The people of one frame and the network to finetune on them, for a regressor that
    tasks/models/embedded.load_regressor made: keypoints-mode (keypoints, bbox info); image-mode
    (uint8 crops, keypoints, bbox info, crop heights); CLIFF (uint8 crops, bbox info). Crops are cut
    from `levels` (the frame's pyramid) as the regress stage cuts them. boxes (N, 4) px, keypoints
    (N, 17, 3) px + confidence, focal and principal point px."""
    from tasks.models.embedded import CliffRegressor, ImageRegressor
    from tasks.regress import box_inputs, cut_crops

    if not regressor.uses_image:
        return keypoint_people(boxes, keypoints, focal, pp), regressor
    x = box_inputs(boxes, keypoints, focal, pp)
    if levels is None:
        raise ValueError("a regressor that reads the image needs the frame's pyramid")
    c = torch.from_numpy(cut_crops(levels, boxes))
    if isinstance(regressor, CliffRegressor):
        net_inputs: tuple[torch.Tensor, ...] = (c, x.info)
        net: nn.Module = regressor.model.cpu()
    elif isinstance(regressor, ImageRegressor):
        net_inputs, net = (c, x.keypoints, x.info, x.b), regressor
    else:
        raise TypeError(f"no crowd inputs for {type(regressor).__name__}")
    return People(net_inputs, x.kp_px, x.centre, x.b, x.focal, x.pp), NormalisedCrops(net)
