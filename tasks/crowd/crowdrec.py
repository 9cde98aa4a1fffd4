"""`crowd.method: crowdrec`, the published procedure (CrowdRec; reference/method.md section 4).

Batches of 50 people in order (a remainder under 8 joins the previous batch); the first batch starts
from the pretrained weights and runs 260 iterations, each later batch continues from the current
weights for 100; each batch's ground direction and spread see only its own people, and its people's
results come from the weights at the end of its own optimisation. Settings: crowd.crowdrec.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from schemas.scene import CrowdrecConfig
from tasks.crowd.method import CrowdMethod, Log, begin, data_terms
from tasks.crowd.people import Fit, NetOutput, People
from tasks.crowd.terms import crowd_loss, plane_of
from tasks.models.body import BodyModel
from tasks.quality import ground_direction


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


def crowdrec_schedule(
    opt: torch.optim.Optimizer, cfg: CrowdrecConfig, first: bool
) -> torch.optim.lr_scheduler.CosineAnnealingWarmRestarts:
    """CrowdRec's learning rate for one batch: cosine annealing from the optimiser's lr to cfg.min_lr
    with warm restarts, the first period cfg.first_period (first batch) or cfg.later_period, each
    next period twice the last."""
    period = cfg.first_period if first else cfg.later_period
    return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=period, T_mult=2, eta_min=cfg.min_lr)


def planned_evaluations(n: int, cfg: CrowdrecConfig) -> int:
    """People the crowdrec procedure forwards for n people before its stop rule adds any: everyone
    once, then each batch once per planned iteration plus its final prediction."""
    parts = batches(n, cfg.batch, cfg.min_last)
    return n + sum(
        len(b) * ((cfg.first_iterations if k == 0 else cfg.later_iterations) + 1) for k, b in enumerate(parts)
    )


def finetune_crowdrec(
    model: nn.Module, people: People, body: BodyModel, cfg: CrowdrecConfig, log: Log | None = None
) -> Fit:
    """The published procedure (module docstring). `model` is finetuned in place (a copy is not made:
    pass a copy to keep the pretrained weights); eval mode, so batch-norm statistics stay frozen."""
    net, start = begin(model, people, body)
    rotmat0 = start.rotmat
    result = [t.clone() for t in start]
    curve: list[float] = []
    for k, rows in enumerate(batches(len(people), cfg.batch, cfg.min_last)):
        idx = torch.from_numpy(rows)
        planned = cfg.first_iterations if k == 0 else cfg.later_iterations
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = crowdrec_schedule(opt, cfg, first=k == 0)
        stop = StopRule(cfg.stop_k, cfg.max_extra)
        it = 0
        while True:
            out = net(idx)
            loss = data_terms(out, idx, people, rotmat0, cfg) + cfg.scale * cfg.w_crowd * crowd_loss(
                out.joints, ground_direction(out.joints)
            )
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
    fit = Fit.of(NetOutput(*result))
    fit.curve, fit.evaluations = curve, net.evaluations
    fit.plane = plane_of(fit.joints, ground_direction(fit.joints))
    return fit


class Crowdrec(CrowdMethod):
    """The published procedure, settings crowd.crowdrec."""

    def prepare(self, people: People, image_wh: tuple[int, int], focal_known: bool) -> dict[str, Any]:
        # nothing is fixed before optimising: each batch fits its own ground direction (CrowdRec)
        return {"ground_normal": None, "ground_offset": None}

    def optimise(self, model: nn.Module, people: People, body: BodyModel, seed: int, log: Log | None) -> Fit:
        return finetune_crowdrec(model, people, body, self.cfg.crowdrec, log)
