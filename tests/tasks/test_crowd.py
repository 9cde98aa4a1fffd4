"""The reduce step's pieces against hand-computed values, and the two procedures' mechanics."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import roma
import torch

from schemas.scene import CrowdConfig
from tasks.crowd import People, crowd_method, crowdrec, finetune, keypoint_people, predict_all
from tasks.crowd.crowdrec import StopRule, batch_loss, batches, crowdrec_schedule
from tasks.crowd.global_ import Global, global_steps, ground_normal, reference_evaluations, warmup_cosine
from tasks.crowd.terms import crowd_loss, plane_of
from tasks.models.body import BodyModel
from tasks.models.embedded import KeypointRegressor, load_embedded
from tasks.quality import L_ANKLE, R_ANKLE, ground_direction, keypoint_errors, robust_ground
from tasks.support import STATURE_PRIOR_M, find_levels, standing_pose
from tasks.synth import KeypointFrame


def _standing(up: torch.Tensor, heights: list[float]) -> torch.Tensor:
    """(N, 24, 3) joints of stick people standing along `up`, feet at the given heights (m)."""
    j = torch.zeros(len(heights), 24, 3)
    side = torch.linalg.cross(up, torch.tensor([0.0, 0.0, 1.0]))
    side = side / side.norm()
    fwd = torch.linalg.cross(side, up)  # along the ground, like side
    for i, h in enumerate(heights):
        base = torch.tensor([0.0, 2.0, 10.0]) + i * side + 0.5 * i * fwd + h * up
        j[i, 7], j[i, 8] = base + 0.1 * side, base - 0.1 * side
        j[i, 0] = base + 0.9 * up
        j[i, 15] = base + 1.6 * up
    return j


def test_ground_direction_and_crowd_loss_hand_computed() -> None:
    up = torch.tensor([0.0, -math.cos(0.3), -math.sin(0.3)])  # camera pitched down by 0.3 rad
    joints = _standing(up, [0.0, 0.0, 0.0, 0.0])
    assert torch.allclose(ground_direction(joints), up, atol=1e-6)
    assert float(crowd_loss(joints, up)) == pytest.approx(0.0, abs=1e-6)  # everyone on one plane
    raised = _standing(up, [0.0, 1.0])
    # pelvis heights differ by 1 m along up: unbiased std of {h, h + 1} = 1 / sqrt(2)
    assert float(crowd_loss(raised, up)) == pytest.approx(1 / math.sqrt(2), abs=1e-5)
    # two people on the plane, measured along a direction tilted 30 degrees towards `fwd`: their pelvis
    # difference (side + 0.5 fwd) reads 0.5 sin(30) m, so the std is 0.25 / sqrt(2)
    flat = _standing(up, [0.0, 0.0])
    side = torch.linalg.cross(up, torch.tensor([0.0, 0.0, 1.0]))
    fwd = torch.linalg.cross(side / side.norm(), up)
    tilted = math.cos(math.pi / 6) * up + math.sin(math.pi / 6) * fwd
    assert float(crowd_loss(flat, tilted)) == pytest.approx(0.25 / math.sqrt(2), abs=1e-5)


def test_plane_and_robust_ground_ignore_a_lying_person() -> None:
    up = torch.tensor([0.0, -1.0, 0.0])
    joints = _standing(up, [0.0] * 5)
    joints[4, 15] = joints[4, 7] + torch.tensor([1.6, 0.0, 0.0])  # someone lying down
    assert float(ground_direction(joints) @ up) < 0.98
    assert torch.allclose(robust_ground(joints, 30.0), up, atol=1e-6)
    plane = plane_of(joints, up)
    feet = (joints[:, 7] + joints[:, 8]) / 2
    assert np.allclose(feet.numpy() @ plane[:3] + plane[3], 0.0, atol=1e-6)


def test_keypoint_loss_hand_computed() -> None:
    focal, pp = torch.tensor([1000.0]), torch.tensor([[500.0, 400.0]])
    coco = torch.zeros(1, 17, 3)
    coco[..., 2] = 10.0  # every joint on the optical axis 10 m away: projects to (500, 400)
    kp = torch.zeros(1, 17, 3)
    kp[..., 0], kp[..., 1] = 500.0, 400.0
    kp[0, 3] = torch.tensor([520.0, 400.0, 0.5])  # 20 px off, confidence 0.5
    kp[0, 4] = torch.tensor([500.0, 300.0, 0.0])  # far off but confidence 0: ignored
    loss = keypoint_errors(coco, kp, torch.tensor([[500.0, 400.0]]), torch.tensor([200.0]), focal, pp)[0]
    # (20 / 200)^2 * 0.5, averaged over 17 joints x 2 coordinates
    assert float(loss) == pytest.approx(0.1**2 * 0.5 / 34, rel=1e-5)


@pytest.mark.parametrize(
    ("n", "spans"),
    [
        (107, [(0, 49), (50, 99), (90, 106)]),  # a last batch of 7 starts 10 people earlier
        (57, [(0, 49), (40, 56)]),
        (100, [(0, 49), (50, 99)]),
        (108, [(0, 49), (50, 99), (100, 107)]),  # 8 is not under 8
        (7, [(0, 6)]),  # a first batch is never moved
        (0, []),
    ],
)
def test_batching_rule_is_the_public_codes(n: int, spans: list[tuple[int, int]]) -> None:
    got = batches(n)
    assert [(int(b[0]), int(b[-1])) for b in got] == spans
    assert all(np.array_equal(b, np.arange(b[0], b[-1] + 1)) for b in got)
    # a batch smaller than `overlap` reaches back no further than person 0
    assert [(int(b[0]), int(b[-1])) for b in batches(12, 5, 3, 10)] == [(0, 4), (5, 9), (0, 11)]


def _lr_sequence(make: Callable[[torch.optim.Optimizer], Any], lr: float, steps: int) -> list[float]:
    """The learning rate at each of `steps` steps of the scheduler `make` builds on an AdamW of lr."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_crowdrec_schedule_follows_its_definition() -> None:
    """The scheduler finetune_crowdrec builds, with the default config (lr 1e-5, min 1e-7; periods 20,
    x2 for the first batch, 140 for later ones)."""
    cfg = CrowdConfig().crowdrec

    def expected(t: int, restarts: list[int]) -> float:
        start = max(r for r in restarts if r <= t)
        period = restarts[restarts.index(start) + 1] - start
        return 1e-7 + (1e-5 - 1e-7) * (1 + math.cos(math.pi * (t - start) / period)) / 2

    first = _lr_sequence(lambda o: crowdrec_schedule(o, cfg, first=True), cfg.lr, 260)
    want = [expected(t, [0, 20, 60, 140, 300]) for t in range(260)]  # periods 20, 40, 80, 160
    assert first == pytest.approx(want, rel=1e-9, abs=1e-15)
    assert [first[t] for t in (0, 20, 60, 140)] == pytest.approx([1e-5] * 4) and first[59] < 2e-7
    later = _lr_sequence(lambda o: crowdrec_schedule(o, cfg, first=False), cfg.lr, 300)
    assert later == pytest.approx([expected(t, [0, 140, 420]) for t in range(300)], rel=1e-9, abs=1e-15)
    assert later[139] < 2e-7 and later[140] == pytest.approx(1e-5)


def _lrs(steps: int, warmup: int, lr: float = 5e-4, min_lr: float = 1e-7) -> list[float]:
    return _lr_sequence(lambda o: warmup_cosine(o, steps, warmup, min_lr), lr, steps)


def test_global_schedule_warms_up_linearly_then_anneals_to_min_lr() -> None:
    lrs = _lrs(110, 10)
    assert lrs[:10] == pytest.approx([5e-4 * (s + 1) / 10 for s in range(10)], rel=1e-9)
    cosine = [1e-7 + (5e-4 - 1e-7) * (1 + math.cos(math.pi * t / 100)) / 2 for t in range(100)]
    assert lrs[10:] == pytest.approx(cosine, rel=1e-9)
    assert lrs[0] == pytest.approx(5e-5) and lrs[9] == pytest.approx(5e-4) and lrs[-1] < 1e-6
    # no warm-up: torch's own cosine annealing; a warm-up longer than half the steps is cut to half
    want = _lr_sequence(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=40, eta_min=1e-7), 5e-4, 40
    )
    assert _lrs(40, 0) == pytest.approx(want, rel=1e-9)
    assert _lrs(8, 10)[:4] == pytest.approx([1.25e-4, 2.5e-4, 3.75e-4, 5e-4], rel=1e-9)


def test_stop_rule_is_the_public_codes() -> None:
    """public code: `if count > total_count: if loss < np.sort(losses)[:5].max(): stop` after
    appending the loss: from 0-based iteration planned + 1 on, one of the 4 lowest losses so far."""
    falling = StopRule(k=5)
    # 10, 9, ... always falls: it stops at the first chance, iteration 4 for 3 planned (5 iterations)
    assert [falling.done(10.0 - i, i, planned=3) for i in range(5)] == [False] * 4 + [True]
    rule = StopRule(k=5)
    losses = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 0.5]
    # 5 is the 5th smallest itself, 6, 7, 8 are above it; 0.5 is the lowest so far
    assert [rule.done(v, i, planned=3) for i, v in enumerate(losses)] == [False] * 8 + [True]
    # 4.5 after 1, 2, 3, 4, 5, 9: below the 5th smallest seen before it (5) but not among the 4 lowest
    fifth = StopRule(k=5)
    assert [fifth.done(v, i, planned=2) for i, v in enumerate([1.0, 2.0, 3.0, 4.0, 5.0, 9.0, 4.5])] == [
        False
    ] * 7
    assert fifth.done(3.5, 7, planned=2)
    # ours: max_extra iterations past the first chance at most, and a non-finite loss stops at once
    capped = StopRule(k=5, max_extra=2)
    assert [capped.done(10.0 + i, i, planned=3) for i in range(7)] == [False] * 6 + [True]
    assert StopRule(k=5).done(float("nan"), 0, planned=100)


def _synthetic(people: int, seed: int, **noise: float) -> tuple[KeypointFrame, BodyModel]:
    """A synthetic crowd of 4096x2048 (tasks/synth.keypoint_frame; noise: its jitter and dropped)."""
    from schemas.scene import SyntheticConfig
    from tasks.poses import load_bank
    from tasks.synth import keypoint_frame

    body = BodyModel.load("builtin:neutral")
    cfg = SyntheticConfig(people=people, width=4096, height=2048, seed=seed)
    return keypoint_frame(cfg, load_bank(), body, **noise), body


def _people(f: KeypointFrame, focal: float | None = None) -> People:
    cam = f.camera
    return keypoint_people(f.boxes, f.kp, focal or cam.f, (cam.width / 2, cam.height / 2))


@pytest.fixture(scope="module")
def crowd() -> tuple[People, BodyModel]:
    f, body = _synthetic(60, seed=2)
    return _people(f), body


def test_finetuning_is_deterministic_and_leaves_the_model_alone(crowd: tuple[People, BodyModel]) -> None:
    people, body = crowd
    torch.manual_seed(0)
    model = KeypointRegressor(width=64).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sections = {
        "crowdrec": {"first_iterations": 6, "later_iterations": 3, "max_extra": 3, "lr": 1e-4},
        "global": {"steps": 8, "refresh": 4, "lr": 1e-4},
    }
    for method in ("crowdrec", "global"):
        c = CrowdConfig.model_validate({"method": method, **sections})
        a, b = (finetune(model, people, body, crowd_method(c), seed=3) for _ in range(2))
        assert torch.equal(a.rotmat, b.rotmat) and torch.equal(a.transl, b.transl) and a.curve == b.curve
        assert a.plane is not None and a.evaluations > 0
        assert not torch.equal(a.transl, predict_all(model, people, body).transl)  # it did change things
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # finetune works on a copy


def test_crowdrec_counts_iterations_per_batch(crowd: tuple[People, BodyModel]) -> None:
    people, body = crowd
    cfg = CrowdConfig.model_validate(
        {
            "method": "crowdrec",
            "crowdrec": {"first_iterations": 5, "later_iterations": 2, "max_extra": 0, "batch": 25},
        }
    )
    told: list[int] = []
    method = crowd_method(cfg)
    fit = finetune(KeypointRegressor(width=32).eval(), people, body, method, progress=told.append)
    # 60 people -> 25 + 25 + 10 (10 is not under 8); with no extra, planned + 2 iterations a batch
    assert len(fit.curve) == (5 + 2) + (2 + 2) + (2 + 2)
    # no everyone-pass and no final pass: each batch forwarded once per iteration
    assert fit.evaluations == 25 * 7 + 25 * 4 + 10 * 4
    # the progress bar's total, and what it is told as the network runs
    assert method.planned(60) == fit.evaluations and told[-1] == fit.evaluations and told == sorted(told)


def _crowdrec_cfg(**crowdrec: Any) -> CrowdConfig:
    return CrowdConfig.model_validate({"method": "crowdrec", "crowdrec": crowdrec})


def test_crowdrec_keeps_one_optimiser_through_a_frames_batches(
    crowd: tuple[People, BodyModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Public code: one AdamW per image (its moments carry over), a new scheduler per batch."""
    people, body = crowd
    made: list[torch.optim.AdamW] = []
    lrs: list[float] = []

    class Recording(torch.optim.AdamW):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

        def step(self, closure: Any = None) -> Any:
            lrs.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    cfg = _crowdrec_cfg(first_iterations=3, later_iterations=2, max_extra=0, batch=27, lr=1e-4)
    fit = finetune(KeypointRegressor(width=32).eval(), people, body, crowd_method(cfg))
    # 60 people -> 0-26, 27-53, 44-59: 5 + 4 + 4 iterations, all on the one optimiser
    assert len(made) == 1 and len(fit.curve) == 13 and len(lrs) == 13
    steps = {int(s["step"]) for s in made[0].state.values()}
    assert steps == {13}  # Adam's step count (its bias correction) runs through the batches
    assert fit.evaluations == 27 * 5 + 27 * 4 + 16 * 4
    # each batch restarts the schedule at lr; within the first, period 20, it anneals
    assert [lrs[i] for i in (0, 5, 9)] == pytest.approx([1e-4] * 3, rel=1e-9)
    assert lrs[1] == pytest.approx(1e-7 + (1e-4 - 1e-7) * (1 + math.cos(math.pi / 20)) / 2, rel=1e-9)
    assert lrs[6] == pytest.approx(1e-7 + (1e-4 - 1e-7) * (1 + math.cos(math.pi / 140)) / 2, rel=1e-9)


def test_crowdrec_keeps_the_last_batchs_results_for_the_people_it_shares(
    crowd: tuple[People, BodyModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    people, body = crowd
    outputs: list[tuple[np.ndarray, Any]] = []
    real = crowdrec.optimise_batch

    def spy(net: Any, idx: torch.Tensor, *args: Any) -> Any:
        out = real(net, idx, *args)
        outputs.append((idx.numpy().copy(), out))
        return out

    monkeypatch.setattr(crowdrec, "optimise_batch", spy)
    cfg = _crowdrec_cfg(first_iterations=3, later_iterations=2, max_extra=0, batch=27, lr=1e-3)
    fit = finetune(KeypointRegressor(width=32).eval(), people, body, crowd_method(cfg))
    assert [(int(i[0]), int(i[-1])) for i, _ in outputs] == [(0, 26), (27, 53), (44, 59)]
    (_, first), (_, second), (_, last) = outputs
    assert torch.equal(fit.transl[:27], first.transl) and torch.equal(fit.rotmat[:27], first.rotmat)
    assert torch.equal(fit.transl[27:44], second.transl[:17])
    assert torch.equal(fit.transl[44:], last.transl) and torch.equal(fit.betas[44:], last.betas)
    # people 44-53 were in two batches, with different results: the last batch's are kept
    assert (second.transl[17:] - last.transl[:10]).abs().max() > 1e-6


def test_crowdrec_outputs_the_prediction_its_stop_rule_stopped_at(crowd: tuple[People, BodyModel]) -> None:
    """One batch of 60: the result is the forward pass of the last iteration (before its optimiser
    step), so its loss, recomputed, is the curve's last value; the weights after the step give another."""
    import copy

    from tasks.crowd.crowdrec import finetune_crowdrec
    from tasks.crowd.people import Net, NetOutput

    people, body = crowd
    torch.manual_seed(1)
    model = KeypointRegressor(width=32).eval()
    target = predict_all(model, people, body).rotmat  # the batch's first prediction: the poses' anchor
    cfg = _crowdrec_cfg(first_iterations=4, batch=60, lr=1e-3).crowdrec
    work = copy.deepcopy(model)
    fit = finetune_crowdrec(work, people, body, cfg)
    curve = fit.curve
    # stopped at the first iteration from planned + 1 (0-based) whose loss is one of the 4 lowest so far
    first_stop = next((i for i in range(5, len(curve)) if curve[i] < sorted(curve[: i + 1])[4]), None)
    assert len(curve) == first_stop + 1

    def loss_of(out: NetOutput) -> float:
        return float(batch_loss(out, torch.arange(60), people, target, cfg))

    aa = roma.rotmat_to_rotvec(fit.rotmat).reshape(60, 72)
    coco = body(aa[:, :3], aa[:, 3:], fit.betas, fit.transl).coco17
    kept = NetOutput(fit.rotmat, fit.betas, fit.cam, fit.transl, fit.joints, coco)
    assert loss_of(kept) == pytest.approx(curve[-1], rel=1e-5)
    with torch.no_grad():
        after_step = Net(work, people, body)(torch.arange(60))
    assert abs(loss_of(after_step) - curve[-1]) > 1e-4 * abs(curve[-1])


def test_crowdrec_runs_a_one_person_frame(regressed: tuple[KeypointFrame, Any]) -> None:
    """The crowd term of one person is 0 (public code), not the NaN std of one value, so the frame is
    finetuned rather than failing as diverged."""
    from schemas.scene import RegressConfig
    from tasks.camera import FrameCamera
    from tasks.crowd import crowd_frame
    from tasks.models.registry import load_regressor
    from tasks.regress import frame_smpl, regress

    f, _ = regressed
    cam = f.camera
    pp = (cam.width / 2, cam.height / 2)
    boxes, kp = f.boxes[:1], f.kp[:1]
    r = regress(None, boxes, kp, load_regressor("embedded"), (cam.width, cam.height), cam.f, pp)
    before = frame_smpl([r], np.arange(1), boxes, kp, "builtin:neutral", FrameCamera(cam.f, *pp, "given"))
    cfg = _crowdrec_cfg(first_iterations=3, lr=1e-4)
    out = crowd_frame(_frame_levels(f), boxes, kp, before, cfg, RegressConfig(), seed=0)
    rows = out.smpl.rows
    assert len(rows) == 1 and np.isfinite(rows.joints3d).all() and np.isfinite(rows.transl).all()
    assert np.isfinite(out.report["loss_curve"]).all() and out.report["iterations"] >= 5
    assert out.report["mean_joint_change_m"] > 0  # it did finetune


def test_global_steps_stay_within_a_third_of_crowdrecs_evaluations() -> None:
    cfg = CrowdConfig()
    assert reference_evaluations(107) == 107 + 50 * 261 + 57 * 101
    for n in (10, 100, 500, 2000):
        steps = global_steps(n, cfg.global_)
        spent = 2 * n + steps * min(50, n) + (steps - 1) // 50 * n  # start, end, batches, refits
        assert steps >= 1 and spent <= reference_evaluations(n) / 3
    assert global_steps(500, cfg.global_.model_copy(update={"steps": 7})) == 7


def test_global_counts_its_evaluations(crowd: tuple[People, BodyModel]) -> None:
    people, body = crowd
    cfg = CrowdConfig.model_validate({"method": "global", "global": {"steps": 9, "refresh": 4, "batch": 20}})
    told: list[int] = []
    method = crowd_method(cfg)
    # the shipped network: its people stand on a floor, so the plane is refitted (a random one's may not)
    fit = finetune(load_embedded("builtin:embedded-kp"), people, body, method, progress=told.append)
    assert fit.levels is not None and len(fit.levels.heights) >= 1
    # start, refits at steps 4 and 8, end: 4 x 60; 9 batches of 20
    assert fit.evaluations == 4 * 60 + 9 * 20 and len(fit.curve) == 9
    assert method.planned(60) == fit.evaluations and told[-1] == fit.evaluations and told == sorted(told)


def test_normalised_crops_equal_cliff_on_normalised_crops() -> None:
    from tasks.models.cliff import Cliff, NormalisedCrops
    from tasks.regress import normalise_crops

    torch.manual_seed(0)
    cliff = Cliff("res50").eval()
    crops = np.random.default_rng(0).integers(0, 256, (2, 256, 192, 3), dtype=np.uint8)
    info = torch.randn(2, 3)
    with torch.no_grad():
        a = NormalisedCrops(cliff)(torch.from_numpy(crops), info)
        b = cliff(normalise_crops(crops), info)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=1e-4, rtol=1e-4)


def test_the_ground_direction_comes_from_the_image_when_the_focal_is_known() -> None:
    f, _ = _synthetic(80, seed=4, jitter=0.0, dropped=0.0)
    cam, boxes, kp = f.camera, f.boxes, f.kp
    truth = f.gt_plane[:3] / np.linalg.norm(f.gt_plane[:3])
    people = _people(f)
    cfg = CrowdConfig().global_
    assert ground_normal(cfg, people, (cam.width, cam.height), focal_known=False)[0] is None
    normal, source = ground_normal(cfg, people, (cam.width, cam.height), focal_known=True)
    assert normal is not None and source.startswith("camera")
    assert math.degrees(math.acos(min(1.0, float(normal @ truth)))) < 0.5  # same side: up, not down
    forced = cfg.model_copy(update={"normal": "camera"})
    assert ground_normal(forced, people, (cam.width, cam.height), focal_known=False)[0] is not None
    people_cfg = cfg.model_copy(update={"normal": "people"})
    assert ground_normal(people_cfg, people, (cam.width, cam.height), focal_known=True)[0] is None
    few = keypoint_people(boxes[:10], kp[:10], cam.f, (cam.width / 2, cam.height / 2))
    normal, source = ground_normal(cfg, few, (cam.width, cam.height), focal_known=True)
    assert normal is None and "do not determine" in source


def test_global_with_a_fixed_normal_fits_only_the_offset(crowd: tuple[People, BodyModel]) -> None:
    people, body = crowd
    up = np.array([0.0, -0.96, -0.28])
    up /= np.linalg.norm(up)
    cfg = CrowdConfig.model_validate({"method": "global", "global": {"steps": 4, "refresh": 2, "snap": True}})
    fit = finetune(KeypointRegressor(width=32).eval(), people, body, Global(cfg, normal=up))
    assert fit.plane is not None and np.allclose(fit.plane[:3], up, atol=1e-6)
    assert fit.levels is not None and fit.support is not None
    feet = ((fit.joints[:, L_ANKLE] + fit.joints[:, R_ANKLE]) / 2).double().numpy()
    on = np.abs(feet @ up + fit.plane[3])
    # snapped onto it: everyone on the floor whose scale the stature prior did not hold stands on it
    stature = body.statures(fit.betas.numpy()) * fit.scale.numpy()
    floor = fit.support == "floor"
    free = floor & (stature > STATURE_PRIOR_M[0] + 1e-4) & (stature < STATURE_PRIOR_M[1] - 1e-4)
    assert free.sum() > len(free) // 2 and on[free].max() < 1e-3
    assert (fit.scale.numpy()[fit.levels.level < 0] == 1).all()  # on no level: not snapped
    on_level = fit.levels.level >= 0
    assert (stature[on_level] >= STATURE_PRIOR_M[0] - 1e-4).all()
    assert (stature[on_level] <= STATURE_PRIOR_M[1] + 1e-4).all()


def test_global_holds_the_camera_height_of_the_first_prediction(crowd: tuple[People, BodyModel]) -> None:
    people, body = crowd
    up = np.array([0.0, -0.96, -0.28])
    up /= np.linalg.norm(up)
    torch.manual_seed(3)
    model = KeypointRegressor(width=32).eval()

    def feet_height(joints: torch.Tensor) -> float:
        feet = (joints[:, L_ANKLE] + joints[:, R_ANKLE]) / 2
        return float(np.median((feet @ torch.as_tensor(up, dtype=feet.dtype)).numpy()))

    start = predict_all(model, people, body)
    pose = standing_pose(people.kp.numpy())
    first = find_levels(
        ((start.joints[:, L_ANKLE] + start.joints[:, R_ANKLE]) / 2).double().numpy(), up,
        body.statures(start.betas.numpy()), pose != 0,
    )  # fmt: skip
    fits = {}
    for height in ("first", "refit"):
        g = {"steps": 6, "refresh": 2, "lr": 1e-3, "warmup": 0, "snap": False, "height": height}
        cfg = CrowdConfig.model_validate({"method": "global", "global": g})
        fits[height] = finetune(model, people, body, Global(cfg, normal=up))
    held, refit = fits["first"], fits["refit"]
    assert held.plane is not None and refit.plane is not None
    # first: the plane's offset (the camera's height above it) is the floor found in the first prediction
    assert len(first.heights) and held.plane[3] == pytest.approx(first.heights[0], abs=1e-5)
    # refit: the median of the finetuned feet of the people on it, which have moved (else this test
    # could not tell the two apart)
    floor = torch.as_tensor(refit.support == "floor")
    assert refit.plane[3] == pytest.approx(-feet_height(refit.joints[floor]), abs=1e-4)
    assert abs(refit.plane[3] - first.heights[0]) > 1e-3


def test_global_beats_crowdrec_and_the_network_on_a_synthetic_crowd() -> None:
    """The shipped regressor on 100 people with ground-truth boxes, keypoints jittered by 2% of the
    box and 5% dropped, the true focal (the frame of benchmarks/crowd.py --people 100 --seed 11 --focal
    true); PA-PPDS / SS / PCOD / OKS measured here before 0.802 / 0.945 / 0.915 / 0.891, crowdrec 0.831
    / 0.942 / 0.928 / 0.938 (as the public code runs it; 0.852 / 0.958 / 0.935 / 0.937 with the 260 /
    100 iterations it ran before #26), global 0.984 / 0.988 / 0.996 / 0.949 (SS 0.982 with the
    ground's offset refitted, OKS 0.933 without the warm-up). SS is held loosely: with 100 people the
    Procrustes scale shrinks with the noise of the points (README). Global's evaluations are held to a
    third of crowdrec's as first shipped (global_.reference_evaluations), not of today's cheaper crowdrec."""
    from tasks.evaluate import TORSO_JOINTS, evaluate_frame

    f, body = _synthetic(100, seed=11)
    people = _people(f)
    model = load_embedded("builtin:embedded-kp")

    def metrics(fit: Any) -> dict[str, float]:
        import roma

        aa = roma.rotmat_to_rotvec(fit.rotmat).reshape(-1, 72).numpy()
        scale = None if fit.scale is None else fit.scale.numpy()
        _, joints, coco = body.numpy_forward(aa, fit.betas.numpy(), fit.transl.numpy(), scale=scale)
        torso = joints[:, TORSO_JOINTS].mean(1)
        s = evaluate_frame(coco, torso, f.camera.K, f.gt_kp2d, f.boxes, f.gt_torso, f.gt_plane)
        return {k: float(v) for k, v in s.metrics().items()}

    cfg = CrowdConfig()
    before = metrics(predict_all(model, people, body))
    crowdrec = finetune(model, people, body, crowd_method(cfg.model_copy(update={"method": "crowdrec"})))
    normal, source = ground_normal(cfg.global_, people, (f.camera.width, f.camera.height), focal_known=True)
    assert source.startswith("camera")
    fit = finetune(model, people, body, Global(cfg, normal=normal))
    cr, gl = metrics(crowdrec), metrics(fit)
    assert fit.evaluations <= reference_evaluations(100) / 3
    # finetuning never costs OKS (the issue allows 0.01) and global gains most where crowdrec gains
    assert cr["oks"] > before["oks"] + 0.03 and gl["oks"] > cr["oks"] + 0.005
    assert gl["pa_ppds"] > cr["pa_ppds"] + 0.1 > before["pa_ppds"] + 0.1
    assert gl["pcod"] > 0.98 > cr["pcod"] > before["pcod"]
    assert gl["ss"] > max(cr["ss"], 0.97) and gl["score"] > cr["score"] + 0.04 > before["score"] + 0.04


@pytest.fixture(scope="module")
def regressed() -> tuple[KeypointFrame, Any]:
    """A synthetic frame of 60 people and its regress-stage table (the shipped regressor, true focal)."""
    from tasks.camera import FrameCamera
    from tasks.models.registry import load_regressor
    from tasks.regress import frame_smpl, regress

    f, _ = _synthetic(60, seed=2)
    cam = f.camera
    pp = (cam.width / 2, cam.height / 2)
    r = regress(None, f.boxes, f.kp, load_regressor("embedded"), (cam.width, cam.height), cam.f, pp)
    before = frame_smpl(
        [r], np.arange(60), f.boxes, f.kp, "builtin:neutral", FrameCamera(cam.f, *pp, "given")
    )
    return f, before


def _frame_levels(f: KeypointFrame) -> list[np.ndarray]:
    """A stand-in pyramid: the frame's size, no pixels (the keypoints regressor reads none)."""
    return [np.broadcast_to(np.zeros((), np.uint8), (f.camera.height, f.camera.width, 3))]


def test_crowd_frame_finetunes_a_frame_and_reports_what_it_did(regressed: tuple[KeypointFrame, Any]) -> None:
    from schemas.scene import RegressConfig
    from tasks.crowd import crowd_frame

    f, before = regressed
    cfg = CrowdConfig.model_validate({"global": {"steps": 30}})
    out = crowd_frame(_frame_levels(f), f.boxes, f.kp, before, cfg, RegressConfig(), seed=0)
    rows, report = out.smpl.rows, out.report
    assert len(rows) == 60 and rows.finetuned.all() and rows.det_id.tolist() == list(range(60))
    assert out.smpl.metadata["crowd_method"] == "global" and "camera" in out.smpl.metadata
    # the focal was given: the ground's direction from the image; its offset from the first prediction
    assert report["ground_normal"].startswith("camera") and report["ground_offset"] == "first"
    assert report["evaluations"] == 60 * 2 + 30 * 50 and report["iterations"] == 30
    spread = report["feet_spread_m"]
    assert spread["finetuned"] < spread["before"] and report["mean_joint_change_m"] > 0.05
    # standing adults on one floor: nearly all judged on it, one level, no warning
    assert report["warning"] is None and len(report["levels"]) >= 1
    floor = rows.support == "floor"
    assert floor.mean() >= 0.9 and report["levels"][0]["people"] == floor.sum()
    # after the snap, everyone on the floor whose stature the prior did not hold stands on it, and
    # ground_distance is the feet's distance before the snap
    feet = (rows.joints3d[:, L_ANKLE] + rows.joints3d[:, R_ANKLE]) / 2
    plane = np.array(report["ground_plane"])
    lo, hi = STATURE_PRIOR_M
    free = (rows.support == "floor") & (rows.stature > lo + 1e-4) & (rows.stature < hi - 1e-4)
    assert free.sum() >= 50 and np.abs(feet[free] @ plane[:3] + plane[3]).max() < 1e-3
    assert np.abs(rows.ground_distance[free]).max() > 0.01
    assert (rows.stature[rows.support == "floor"] >= lo - 1e-4).all()
    assert (rows.stature[rows.support == "floor"] <= hi + 1e-4).all()
    plaus = report["plausibility"]
    assert plaus["people"] == 60 and plaus["on_level_within_m"]["0.1"] >= 0.8


def test_a_new_crowd_method_runs_from_its_class_and_its_registry_entry(
    regressed: tuple[KeypointFrame, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A method that changes nothing, registered here alone, runs through the frame-level entry."""
    from schemas.scene import RegressConfig
    from tasks.crowd import CROWD_METHODS, CrowdMethod, crowd_frame

    class Unchanged(CrowdMethod):
        def prepare(self, people: People, image_wh: tuple[int, int], focal_known: bool) -> dict[str, Any]:
            return {"toy": len(people)}

        def optimise(
            self, model: Any, people: People, body: BodyModel, seed: int, log: Any, progress: Any = None
        ) -> Any:
            return predict_all(model, people, body)

    monkeypatch.setitem(CROWD_METHODS, "unchanged", Unchanged)
    f, before = regressed
    cfg = CrowdConfig().model_copy(update={"method": "unchanged"})
    out = crowd_frame(_frame_levels(f), f.boxes, f.kp, before, cfg, RegressConfig(), seed=0)
    assert out.report["method"] == "unchanged" and out.report["toy"] == 60 and out.report["iterations"] == 0
    np.testing.assert_allclose(out.smpl.rows.joints3d, before.rows.joints3d, atol=1e-5)
    assert out.report["mean_joint_change_m"] < 1e-5 and out.smpl.rows.finetuned.all()


def test_crowd_frame_leaves_seated_people_where_the_network_put_them(
    regressed: tuple[KeypointFrame, Any],
) -> None:
    """Five people's 2D legs folded as a seated person's (thigh forward, shin down): judged not
    standing, neither pulled to the floor nor stood on it (scale 1: their statures are plausible)."""
    from schemas.scene import RegressConfig
    from tasks.crowd import crowd_frame

    f, before = regressed
    kp = f.kp.copy()
    seated = np.arange(5)
    for i in seated:
        for hip, knee, ankle in ((11, 13, 15), (12, 14, 16)):
            trunk = np.linalg.norm(kp[i, hip, :2] - kp[i, hip - 6, :2])  # shoulder to hip, px
            kp[i, knee, :2] = kp[i, hip, :2] + [0.9 * trunk, 0.0]
            kp[i, ankle, :2] = kp[i, knee, :2] + [0.0, 0.9 * trunk]
            kp[i, [hip, knee, ankle, hip - 6], 2] = 1.0
    cfg = CrowdConfig.model_validate({"global": {"steps": 10}})
    out = crowd_frame(_frame_levels(f), f.boxes, kp, before, cfg, RegressConfig(), seed=0)
    rows = out.smpl.rows
    folded_others = int((rows.support[5:] == "not_standing").sum())
    assert (rows.support[seated] == "not_standing").all() and folded_others <= 0.05 * (len(rows) - 5)
    assert rows.scale[seated] == pytest.approx(np.ones(5))
    assert out.report["plausibility"]["support"]["not_standing"] == 5 + folded_others


def test_the_levels_of_a_synthetic_terrace_frame_from_the_first_prediction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stadium_entrance frame with a 3.5-4 m terrace seen from 10 m: from the shipped regressor's
    first prediction and the true up, the floor and the terrace are found at their heights, and most
    of each level's people stand on it. (With the up estimated from the image, 2-3 degrees off, the
    two merge: benchmarks/README.md.)"""
    from dataclasses import replace

    import tasks.scenery
    from schemas.scene import SyntheticConfig
    from tasks.camera import FrameCamera
    from tasks.models.registry import load_regressor
    from tasks.poses import load_bank
    from tasks.regress import frame_smpl, regress
    from tasks.synth import keypoint_frame, layout

    stand = replace(tasks.scenery.PRESETS["stadium_entrance"], terrace=(3.5, 4.0))
    monkeypatch.setitem(tasks.scenery.PRESETS, "stadium_entrance", stand)
    cfg = SyntheticConfig(people=300, width=4096, height=2048, seed=0, preset="stadium_entrance",
                          camera_height=10.0)  # fmt: skip
    body = BodyModel.load("builtin:neutral")
    f, scene = keypoint_frame(cfg, load_bank(), body), layout(cfg, load_bank(), body)
    cam = f.camera
    pp = (cam.width / 2, cam.height / 2)
    r = regress(None, f.boxes, f.kp, load_regressor("embedded"), (cam.width, cam.height), cam.f, pp)
    given = FrameCamera(cam.f, *pp, "given")
    rows = frame_smpl([r], np.arange(300), f.boxes, f.kp, "builtin:neutral", given).rows
    feet = np.asarray(rows.joints3d).reshape(300, 24, 3)[:, 7:9].mean(1)
    levels = find_levels(feet, scene.up, body.statures(np.asarray(rows.betas)), standing_pose(f.kp) != 0)
    (terrace,) = scene.levels
    assert levels.heights == pytest.approx([scene.height, scene.height - terrace], rel=0.1)
    on_floor, on_terrace = f.support == "floor", f.support == "level_2"
    assert (levels.level[on_floor] == 0).mean() > 0.8 and (levels.level[on_terrace] == 1).mean() > 0.7


def test_crowd_frame_on_a_stadium_entrance_frame_keeps_statures_and_seated_people() -> None:
    """A second-generation frame (benches, cyclists, jumpers, children, a terrace) through the crowd
    step: every stature ends within the prior, the people judged not standing keep their size and
    place (scale 1), most seated people are judged so, and most people on the floor stand on it."""
    from schemas.scene import RegressConfig, SyntheticConfig
    from tasks.camera import FrameCamera
    from tasks.crowd import crowd_frame
    from tasks.models.registry import load_regressor
    from tasks.poses import load_bank
    from tasks.regress import frame_smpl, regress
    from tasks.synth import keypoint_frame

    cfg = SyntheticConfig(people=150, width=4096, height=2048, seed=21, preset="stadium_entrance")
    f = keypoint_frame(cfg, load_bank(), BodyModel.load("builtin:neutral"))
    cam = f.camera
    pp = (cam.width / 2, cam.height / 2)
    r = regress(None, f.boxes, f.kp, load_regressor("embedded"), (cam.width, cam.height), cam.f, pp)
    before = frame_smpl(
        [r], np.arange(150), f.boxes, f.kp, "builtin:neutral", FrameCamera(cam.f, *pp, "given")
    )
    cfg20 = CrowdConfig.model_validate({"global": {"steps": 20}})
    out = crowd_frame(_frame_levels(f), f.boxes, f.kp, before, cfg20, RegressConfig(), seed=0)
    rows = out.smpl.rows
    lo, hi = STATURE_PRIOR_M
    assert (rows.stature >= lo - 1e-4).all() and (rows.stature <= hi + 1e-4).all()
    folded = rows.support == "not_standing"
    assert rows.scale[folded] == pytest.approx(np.ones(int(folded.sum())))
    seated = f.support == "seat"
    assert seated.sum() >= 10 and folded[seated].mean() >= 0.7
    assert (rows.support[f.support == "floor"] == "floor").mean() >= 0.85


def _standing_on(up: np.ndarray, height: float, n: int = 12, seed: int = 0) -> torch.Tensor:
    """Joints (n, 24, 3) m of people upright along `up` (3,) unit, feet on the plane up . X + height = 0,
    spread over 8-20 m in front of the camera."""
    from tasks.quality import HEAD

    rng = np.random.default_rng(seed)
    right = np.cross(up, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    forward = np.cross(right, up)
    spots = -height * up + rng.uniform(-5, 5, (n, 1)) * right + rng.uniform(8, 20, (n, 1)) * forward
    joints = np.repeat(spots[:, None], 24, 1)
    joints[:, HEAD] += 1.6 * up
    return torch.as_tensor(joints, dtype=torch.float32)


@pytest.mark.parametrize(("turn_deg", "kept"), [(4.0, False), (30.0, True)])
def test_a_floor_refit_may_not_swing_the_up_by_more_than_max_turn_deg(turn_deg: float, kept: bool) -> None:
    """The levels' heights are held while the up is refitted: a refit that swung the up by 30 degrees
    (few people, or the bodies' lean) would put everyone metres off their level, so it is refused; a
    small turn is the floor's direction refined, and taken."""
    from tasks.crowd.global_ import _Ground
    from tasks.support import Levels

    cfg = CrowdConfig().global_
    judged = np.array([0.0, -1.0, 0.0])
    ground = _Ground(cfg, None)
    ground.levels = Levels(judged, np.array([1.5]), np.zeros(12, int), None, "the plane of the feet")
    a = math.radians(turn_deg)
    turned = np.array([0.0, -math.cos(a), -math.sin(a)])  # the camera pitched: the floor's up turns
    levels = ground.refresh(_standing_on(turned, 1.5))
    expected = judged if kept else turned
    assert float(levels.up @ expected) > math.cos(math.radians(0.5))
    assert levels.up_source.endswith("refused)") == kept and (levels.level == 0).all()


def test_a_small_groups_floor_is_searched_at_judgement_and_held_through_the_refits() -> None:
    """Ten people whose feet fix the floor's direction only loosely (tasks/support.steadiest_levels):
    the judged up may be turned from the fitted one, and later refits leave it (and the levels) as
    judged; a given normal is not searched."""
    from tasks.crowd.global_ import _Ground
    from tasks.support import _tilted

    true_up = np.array([0.0, -1.0, 0.0])
    joints = _standing_on(true_up, 1.6, n=10, seed=3)
    statures = np.full(10, 1.7)
    pose = np.ones(10)
    ground = _Ground(CrowdConfig().global_, None)
    judged = ground.judge(joints, statures, pose)
    assert ground.small and (judged.level == 0).all() and abs(judged.heights[0] - 1.6) < 0.1
    tilted = _standing_on(_tilted(true_up, 9.0, 0.0), 1.6, n=10, seed=3)
    assert ground.refresh(tilted) is judged  # held: a small group's refit would undo the search
    given = _Ground(CrowdConfig().global_, true_up)
    given.judge(joints, statures, pose)
    assert not given.small and given.refresh(tilted).up_source == "given"
