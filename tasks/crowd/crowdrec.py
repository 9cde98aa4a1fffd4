"""`crowd.method: crowdrec`, the published procedure (CrowdRec; reference/method.md section 4) as its
public code runs it (boycehbz/CrowdRec, utils/modules.py `predict` and `optimization`).

Per frame: batches of 50 people in detection order, a last batch under 8 people started 10 people
earlier (the people it shares with the batch before get its results); one AdamW for the frame, made
at its first batch, whose moments carry through the later ones, and a new warm-restart scheduler for
each batch; each batch holds its people's poses to their first prediction in that batch (the current
weights', not the pretrained ones), and its people's results are the prediction of the iteration at
which the stop rule ended it. Each batch's ground direction and spread see only its own people; the
crowd term of a batch of one person is 0 (public code). Iteration counts: settings whose defaults are
the public demo's (100 first, 50 later; the paper reports 260 in all). Settings: crowd.crowdrec.

Differences from the public code too small to need a setting: the warm restarts are torch's
CosineAnnealingWarmRestarts stepped after each optimiser step (the public CyclicLRWithRestarts steps
once before and once after it: a one-step phase shift) and leave the weight decay fixed (the public
one scales it by the schedule too; at lr 1e-5 negligible); the ground direction is renormalised to
unit length (the public code uses the mean of the people's unit vectors as it is, slightly shorter);
the shape term pulls betas to 0 as the public code does (the paper's eq. 11 says to the initial
betas). Ours alone: a non-finite loss ends a batch at once (the frame then fails as diverged) and
crowd.crowdrec.max_extra caps the stop rule, where the public code would loop for ever.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from schemas.scene import CrowdrecConfig
from tasks.crowd.method import CrowdMethod, Log, data_terms
from tasks.crowd.people import Fit, Net, NetOutput, People, Progress
from tasks.crowd.terms import crowd_loss, plane_of
from tasks.models.body import BodyModel
from tasks.quality import ground_direction


def batches(n: int, size: int = 50, min_last: int = 8, overlap: int = 10) -> list[np.ndarray]:
    """People 0..n-1 in batches of `size` in order, as the public code cuts them: a last batch under
    `min_last` people starts `overlap` people earlier (never before person 0), 107 -> 0-49, 50-99,
    90-106; finetune_crowdrec writes the batches' results in order, so shared people keep the last's."""
    out = []
    for start in range(0, n, size):
        end = min(start + size, n)
        if end - start < min_last and start > 0:
            start = max(0, start - overlap)
        out.append(np.arange(start, end))
    return out


class StopRule:
    """CrowdRec's stop rule (public code): from iteration planned + 1 on (0-based; the public loop's
    `count > total_count`), stop at the first iteration whose loss is below the k-th smallest loss
    seen so far, its own included (k = 5: one of the 4 lowest). Ours: a non-finite loss stops at once,
    and no more than `max_extra` iterations run past the first at which the rule may stop."""

    def __init__(self, k: int = 5, max_extra: int = 1000) -> None:
        self.k, self.max_extra = k, max_extra
        self.seen: list[float] = []

    def done(self, loss: float, iteration: int, planned: int) -> bool:
        """True when optimisation stops at `iteration` (0-based) whose loss was `loss`."""
        self.seen.append(loss)
        if not math.isfinite(loss):
            return True
        if iteration <= planned:
            return False
        if iteration >= planned + 1 + self.max_extra:
            return True
        return loss < max(sorted(self.seen)[: self.k])


def crowdrec_schedule(
    opt: torch.optim.Optimizer, cfg: CrowdrecConfig, first: bool
) -> torch.optim.lr_scheduler.CosineAnnealingWarmRestarts:
    """CrowdRec's learning rate for one batch: cosine annealing from cfg.lr (the optimiser's first lr,
    kept as its initial_lr) to cfg.min_lr with warm restarts, the first period cfg.first_period
    (first batch) or cfg.later_period, each next period twice the last."""
    period = cfg.first_period if first else cfg.later_period
    return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=period, T_mult=2, eta_min=cfg.min_lr)


def batch_loss(
    out: NetOutput, idx: torch.Tensor, people: People, target: torch.Tensor, cfg: CrowdrecConfig
) -> torch.Tensor:
    """The loss of the people `idx`: the data terms, poses held to target[idx] (target (N, 24, 3, 3):
    each person's first prediction in their batch), plus the crowd term along the batch's own ground
    direction; 0 for a batch of one person (no spread of one value: the public code's rule)."""
    loss = data_terms(out, idx, people, target, cfg)
    if len(idx) > 1:
        loss = loss + cfg.scale * cfg.w_crowd * crowd_loss(out.joints, ground_direction(out.joints))
    return loss


def optimise_batch(
    net: Net, idx: torch.Tensor, target: torch.Tensor, opt: torch.optim.Optimizer, cfg: CrowdrecConfig,
    first: bool, curve: list[float],
) -> NetOutput:  # fmt: skip
    """One batch of people `idx` (public code `optimization`): a new scheduler on the frame's
    optimiser `opt`, target[idx] set to the batch's first prediction, iterations until the stop rule
    ends them (each loss appended to `curve`); returns the prediction of that last iteration, made
    before its optimiser step (the people's result in the public code)."""
    sched = crowdrec_schedule(opt, cfg, first)
    planned = cfg.first_iterations if first else cfg.later_iterations
    stop = StopRule(cfg.stop_k, cfg.max_extra)
    it = 0
    while True:
        out = net(idx)
        if it == 0:
            target[idx] = out.rotmat.detach()
        loss = batch_loss(out, idx, net.people, target, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        curve.append(float(loss.detach()))
        if stop.done(curve[-1], it, planned):
            return NetOutput(*(t.detach() for t in out))
        it += 1


def finetune_crowdrec(
    model: nn.Module, people: People, body: BodyModel, cfg: CrowdrecConfig, log: Log | None = None,
    progress: Progress | None = None,
) -> Fit:  # fmt: skip
    """The published procedure (module docstring). `model` is finetuned in place (a copy is not made:
    pass a copy to keep the pretrained weights); eval mode, so batch-norm statistics stay frozen."""
    n = len(people)
    parts = batches(n, cfg.batch, cfg.min_last, cfg.overlap)
    if not parts:
        raise ValueError("crowdrec: the frame has no people to finetune on")
    model.eval()
    net = Net(model, people, body, progress)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    target = torch.zeros(n, 24, 3, 3, dtype=people.kp.dtype, device=people.kp.device)
    result: list[torch.Tensor] = []
    curve: list[float] = []
    for k, rows in enumerate(parts):
        idx = torch.from_numpy(rows)
        start = len(curve)
        out = optimise_batch(net, idx, target, opt, cfg, k == 0, curve)
        if not result:
            result = [t.new_zeros((n, *t.shape[1:])) for t in out]
        for r, t in zip(result, out, strict=True):
            r[idx] = t  # in batch order: people a small last batch shares keep its results
        if log:
            log(f"crowdrec batch {k}: people {rows[0]}-{rows[-1]}, {len(curve) - start} iterations, "
                f"loss {curve[-1]:.4g}")  # fmt: skip
    fit = Fit.of(NetOutput(*result))
    fit.curve, fit.evaluations = curve, net.evaluations
    fit.plane = plane_of(fit.joints, ground_direction(fit.joints))
    return fit


class Crowdrec(CrowdMethod):
    """The published procedure, settings crowd.crowdrec."""

    def prepare(self, people: People, image_wh: tuple[int, int], focal_known: bool) -> dict[str, Any]:
        # nothing is fixed before optimising: each batch fits its own ground direction (CrowdRec)
        return {"ground_normal": None, "ground_offset": None}

    def planned(self, n: int) -> int:
        c = self.cfg.crowdrec
        parts = batches(n, c.batch, c.min_last, c.overlap)
        # the stop rule needs at least planned + 2 iterations per batch
        return sum(
            len(p) * ((c.first_iterations if k == 0 else c.later_iterations) + 2) for k, p in enumerate(parts)
        )

    def optimise(
        self, model: nn.Module, people: People, body: BodyModel, seed: int, log: Log | None,
        progress: Progress | None = None,
    ) -> Fit:  # fmt: skip
        return finetune_crowdrec(model, people, body, self.cfg.crowdrec, log, progress)
