"""Who stands on which floor: the crowd step's judgement of each person's support.

Real crowds are not one flat floor of standing adults: people sit on benches and steps, ride bicycles,
crouch, jump, and stand on terraces and stands above the main floor. A person is pulled to a floor
and stood on it (snapped) only when both of these say so:
- the pose (`standing_pose`): the 2D keypoints of at least one leg reach far along the trunk's axis
  with the thigh in line with the trunk, as a standing or walking person's do; seated, riding and
  crouching people's legs fold (hip flexion). Legs the pose network is unsure of leave the pose
  undecided, and the floor test alone decides;
- the floor (`find_levels`): along the ground's up direction each person's feet imply a camera height
  (the camera at the origin, its height above the floor they would stand on). A level is a camera
  height that gives most of the standing people a plausible stature when they are scaled about the
  camera to stand on it (the scale keeps their image, STATURE_PRIOR_M bounds the stature); a second
  level (a terrace, a stand) is found the same way among the people the first leaves out, when enough
  of them agree and a valley in the people's density separates it from the first. A standing person
  stands on the nearest level unless their feet are more than MAX_DEPTH_RATIO off it.
The snap (`snap`) puts the feet of the people on a level where their image ray meets it, with a
stature within the prior; everyone else keeps their place, and nobody's stature leaves the prior.

Conventions: camera frame x right, y down, z forward, metres; the up direction n (3,) is a unit vector
from the floor towards the heads; a level is the plane n . X + d = 0, d > 0 the camera's height above
it. COCO-17 keypoints in pixels with confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

# Statures (rest-pose height x scale, m) the snap may give an adult; children need a body model whose
# shape space reaches them (the shipped one does not), so they are held to this range too.
STATURE_PRIOR_M = (1.5, 1.95)
FLOOR, NOT_STANDING, OFF_FLOOR, NOT_JUDGED = "floor", "not_standing", "off_floor", "not_judged"
# A standing person whose feet imply a camera height more than this factor off every level's is
# judged on none (in the air near the camera, on a vehicle or a stand): the network's depth errs by
# tens of percent on small and occluded people, and those are the people the crowd term corrects.
MAX_DEPTH_RATIO = 2.0
ON_FLOOR_M = 0.10  # feet this close to their level stand on it

_LEGS = ((5, 11, 13, 15), (6, 12, 14, 16))  # COCO-17 shoulder, hip, knee, ankle: left, right
MIN_CONFIDENCE = 0.3  # keypoints below it are not used for the pose judgement
# A leg is folded when its ankle reaches less than this many trunk lengths (shoulder to hip, same
# side) beyond the hip along the trunk, its thigh bends more than 180 - MIN_HIP_ANGLE_DEG from the
# trunk's line, or the thigh looks shorter than MIN_THIGH_RATIO trunk lengths. Standing and walking
# people's legs reach 1.1-1.9 trunk lengths in the image with the thigh within ~55 degrees of the
# trunk's line and 0.55-1.2 trunk lengths long (a camera looking down foreshortens trunk and thigh
# alike); seated and riding people's reach about the shin's length, their thighs bent 70-100
# degrees seen from the side, or pointing at the camera (short) seen from the front. An upright
# rider (thigh bent less than 60 degrees) and a jumping person pass as standing here: the floor
# test decides.
MIN_LEG_REACH = 1.0
MIN_HIP_ANGLE_DEG = 120.0
MIN_THIGH_RATIO = 0.5


def level_label(k: int) -> str:
    """The support label of level k (0: the main floor, the level with the most people)."""
    return FLOOR if k == 0 else f"level_{k + 1}"


def standing_pose(kp: np.ndarray, min_conf: float = MIN_CONFIDENCE) -> np.ndarray:
    """(N,) 1 standing-like, 0 folded (seated, riding, crouching), NaN undecided, from keypoints
    (N, 17, 3) px + confidence. Per side whose shoulder, hip, knee and ankle are all confident, the
    leg is folded when its ankle reaches less than MIN_LEG_REACH trunk lengths beyond the hip along
    that side's trunk (shoulder to hip), its thigh leaves the trunk's line by more than
    180 - MIN_HIP_ANGLE_DEG degrees or is shorter than MIN_THIGH_RATIO trunk lengths. A person
    stands when one such leg is not folded, is folded when every such leg is, and is undecided
    without one (legs hidden in a crowd)."""
    kp = np.asarray(kp, np.float64)
    out = np.full(len(kp), np.nan)
    for side in _LEGS:
        pts = kp[:, side]  # (N, 4, 3)
        ok = (pts[..., 2] >= min_conf).all(1)
        sh, hip, knee, ankle = (pts[:, j, :2] for j in range(4))
        axis = hip - sh
        trunk = np.linalg.norm(axis, axis=1)
        ok &= trunk > 1e-6
        axis = axis / np.maximum(trunk, 1e-6)[:, None]
        reach = ((ankle - hip) * axis).sum(1) / np.maximum(trunk, 1e-6)
        thigh = knee - hip
        thigh_len = np.linalg.norm(thigh, axis=1)
        cos = (thigh * axis).sum(1) / np.maximum(thigh_len, 1e-6)
        hip_angle = 180.0 - np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
        extended = (
            (reach >= MIN_LEG_REACH)
            & (hip_angle >= MIN_HIP_ANGLE_DEG)
            & (thigh_len >= MIN_THIGH_RATIO * np.maximum(trunk, 1e-6))
        )
        # one extended leg makes a standing person; a folded leg counts only where none is extended
        out[ok & extended] = 1.0
        out[ok & ~extended & (out != 1.0)] = 0.0
    return out


@dataclass(frozen=True)
class Levels:
    """The floors of a frame: up (3,) unit; heights (K,) m, the camera's height above each level
    (level k: the plane up . X + heights[k] = 0), the main floor first; level (N,) the level each
    person stands on, -1 for none; warning: why no level was found (None when one was); up_source:
    where the up direction came from (the caller's words)."""

    up: np.ndarray
    heights: np.ndarray
    level: np.ndarray
    warning: str | None = None
    up_source: str = ""

    def plane(self, k: int = 0) -> np.ndarray:
        """(4,) level k as n . X + d = 0."""
        return np.array([*self.up, self.heights[k]])

    def planes(self) -> np.ndarray:
        """(N, 4) each person's level as a plane; NaN rows for people on none."""
        out = np.full((len(self.level), 4), np.nan)
        on = self.level >= 0
        out[on, :3] = self.up
        out[on, 3] = self.heights[self.level[on]]
        return out


def _best_height(lo: np.ndarray, hi: np.ndarray, own: np.ndarray) -> tuple[float, np.ndarray]:
    """The camera height inside the most intervals [lo_i, hi_i] (each person's plausible heights) and
    those people: the median of their own implied heights `own`, held inside the common interval."""
    events = np.concatenate([np.stack([lo, np.ones_like(lo)], 1), np.stack([hi, -np.ones_like(hi)], 1)])
    events = events[np.lexsort((-events[:, 1], events[:, 0]))]  # openings before closings at a tie
    depth = np.cumsum(events[:, 1])
    k = int(np.argmax(depth))
    at = float(events[k, 0])
    inside = (lo <= at) & (hi >= at)
    common_lo, common_hi = float(lo[inside].max()), float(hi[inside].min())
    return float(np.clip(np.median(own[inside]), common_lo, common_hi)), inside


def _separate(x: np.ndarray, main: float, other: float, band: float, width: float = 0.05) -> bool:
    """Whether log camera height `other` is a level apart from `main`, given everyone's log implied
    camera heights x (N,): farther than log(band) from it, and with a valley between the two in the
    people's density (a Gaussian kernel of `width`, ~5% in depth), at most half the density at
    `other`. Depth errors thin out away from the floor without a valley; a terrace's people make one."""
    if abs(other - main) < math.log(band):
        return False
    grid = np.linspace(min(main, other), max(main, other), 64)
    density = np.exp(-0.5 * ((grid[:, None] - x[None]) / width) ** 2).sum(1)
    at_other = density[-1] if other > main else density[0]
    return bool(density.min() <= 0.5 * at_other)


def find_levels(
    feet: np.ndarray, up: np.ndarray, statures: np.ndarray, candidates: np.ndarray, max_levels: int = 2,
    min_people: int = 5, min_share: float = 0.2, prior: tuple[float, float] = STATURE_PRIOR_M,
    max_ratio: float = MAX_DEPTH_RATIO,
) -> Levels:  # fmt: skip
    """The levels the candidates stand on (module docstring). feet (N, 3) m, the ankles' midpoints;
    up (3,) unit; statures (N,) m, rest-pose heights at the current scale; candidates (N,) bool, the
    people whose pose allows standing. The main floor needs min_people and min_share of the
    candidates; a further level min_people and min_share of those left, a camera height outside the
    main floor's plausible band (farther than prior[1] / prior[0] from it) and a valley in the
    people's density between the two (_separate: else it is the tail of the network's depth errors,
    not a terrace). Each candidate stands on the level nearest its own
    implied camera height, within a factor max_ratio (a person's depth rarely errs more; beyond,
    the person is on something else or in the air), else on none."""
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    own = -(np.asarray(feet, np.float64) @ up)  # each person's implied camera height, m
    usable = np.asarray(candidates, bool) & (own > 0) & np.isfinite(own)
    own_safe = np.where(usable, own, 1.0)
    lo = own_safe * prior[0] / statures
    hi = own_safe * prior[1] / statures
    heights: list[float] = []
    need = max(min_people, math.ceil(min_share * usable.sum()))
    left = usable.copy()
    band = prior[1] / prior[0]
    while len(heights) < max_levels and left.sum() >= need:
        idx = np.flatnonzero(left)
        h, inside = _best_height(lo[idx], hi[idx], own_safe[idx])
        if inside.sum() < need:
            break
        left[idx[inside]] = False
        if heights and not _separate(np.log(own_safe[usable]), math.log(heights[0]), math.log(h), band):
            continue  # the tail of the floor's depth errors, not a level of its own
        heights.append(h)
        need = max(min_people, math.ceil(min_share * left.sum()))
    level = np.full(len(own), -1)
    if not heights:
        why = (
            f"no floor: of {int(usable.sum())} people who may stand, fewer than {need} agree on one "
            f"ground level with statures within {prior[0]}-{prior[1]} m"
        )
        return Levels(up, np.zeros(0), level, why)
    h = np.asarray(heights)
    off = np.abs(np.log(own_safe[:, None] / h[None]))  # (N, K) log-ratio to each level
    nearest = off.argmin(1)
    on = usable & (off[np.arange(len(own)), nearest] <= math.log(max_ratio))
    level[on] = nearest[on]
    return Levels(up, h, level)


def _tilted(up: np.ndarray, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """up (3,) unit turned by pitch_deg about the camera's x axis and roll_deg about its z axis."""
    a, b = math.radians(pitch_deg), math.radians(roll_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    rz = np.array([[math.cos(b), -math.sin(b), 0], [math.sin(b), math.cos(b), 0], [0, 0, 1]])
    out = rz @ rx @ np.asarray(up, np.float64)
    return out / np.linalg.norm(out)


def _agreement(levels: Levels, feet: np.ndarray) -> tuple[int, float]:
    """How well the people agree on `levels`: (people on a level, minus the spread (std) of their log
    implied camera heights about their level's)."""
    on = levels.level >= 0
    if not on.any():
        return 0, 0.0
    own = -(np.asarray(feet, np.float64)[on] @ levels.up)
    return int(on.sum()), -float(np.std(np.log(np.maximum(own, 1e-6) / levels.heights[levels.level[on]])))


def steadiest_levels(
    feet: np.ndarray, up: np.ndarray, statures: np.ndarray, candidates: np.ndarray, small: int,
    max_tilt_deg: float, step_deg: float = 2.0, **kw: object,
) -> Levels:  # fmt: skip
    """find_levels, and for a group of fewer than `small` people who may stand, along the up (3,)
    turned by up to max_tilt_deg (pitch and roll, step_deg apart) too: the floors of the direction on
    which the most people stand on a level, their implied camera heights the least spread about it.
    A plane through a dozen people's feet (or their bodies' mean lean) is uncertain by several
    degrees, and at 10-20 m a few degrees of pitch move the implied camera height by a metre: the
    level finder then sees depths that disagree when the floor does not. Larger groups fix the
    direction well: their levels are found along `up`."""
    best = find_levels(feet, up, statures, candidates, **kw)  # type: ignore[arg-type]
    if int(np.asarray(candidates, bool).sum()) >= small or max_tilt_deg <= 0:
        return best
    best_key = _agreement(best, feet)
    grid = np.arange(-max_tilt_deg, max_tilt_deg + 1e-9, step_deg)
    for pitch in grid:
        for roll in grid:
            lv = find_levels(feet, _tilted(up, pitch, roll), statures, candidates, **kw)  # type: ignore[arg-type]
            if (key := _agreement(lv, feet)) > best_key:
                best, best_key = lv, key
    return best


def snap(
    feet: np.ndarray, transl: np.ndarray, levels: Levels, statures: np.ndarray,
    prior: tuple[float, float] = STATURE_PRIOR_M,
) -> tuple[np.ndarray, np.ndarray, Levels]:  # fmt: skip
    """Stand each person on a level on it: (scale (N,), transl (N, 3) m) such that vertices =
    scale * body + transl, and the levels without the people the finetune took more than
    MAX_DEPTH_RATIO off theirs (not standing on it: they keep their place). The feet go where their
    image ray meets the level (scale lambda about the camera centre: the depth the ground gives, and
    the image unchanged); the body's size goes as far
    towards lambda as the stature prior allows, about the feet: where lambda would make a giant or a
    child of an adult, the person stands at the ground's depth with a plausible stature, and their
    image grows or shrinks by the difference. People on no level keep their place; a stature that
    leaves the prior is scaled to its nearest bound about the camera. feet (N, 3) m, the ankles'
    midpoints, and transl (N, 3) m of scale-1 bodies; statures (N,) m at scale 1."""
    statures = np.asarray(statures, np.float64)
    feet, transl = np.asarray(feet, np.float64), np.asarray(transl, np.float64)
    lo, hi = prior[0] / statures, prior[1] / statures
    scale = np.clip(1.0, lo, hi)
    out = transl * scale[:, None]
    own = -(feet @ levels.up)  # each person's implied camera height, m
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(own > 0, levels.planes()[:, 3] / own, np.nan)  # NaN: on no level
    # a person the finetune took more than MAX_DEPTH_RATIO off its level is not standing on it
    on = np.flatnonzero((lam <= MAX_DEPTH_RATIO) & (lam >= 1 / MAX_DEPTH_RATIO))
    lam = lam[on]
    s = np.clip(lam, lo[on], hi[on])
    scale[on] = s
    # feet' = s (feet - transl) + transl' = lam feet
    out[on] = lam[:, None] * feet[on] - s[:, None] * (feet[on] - transl[on])
    level = np.full(len(feet), -1)
    level[on] = levels.level[on]
    return scale, out, replace(levels, level=level)


def depth_bound(
    boxes: np.ndarray, focal: float, pp: tuple[float, float], levels: Levels
) -> np.ndarray:  # fmt: skip
    """(N,) the farthest depth (m, camera z) at which each box's person can be: boxes (N, 4) px,
    focal px, pp (2,) px. Whatever the box shows stands on or above the lowest level, so its bottom
    centre's ray meets that level at or beyond the person; inf where the ray does not meet it (at or
    above the horizon) or there is no level."""
    if not len(levels.heights):
        return np.full(len(boxes), np.inf)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    rays = np.stack(
        [(0.5 * (b[:, 0] + b[:, 2]) - pp[0]) / focal, (b[:, 3] - pp[1]) / focal, np.ones(len(b))], axis=1
    )
    down = rays @ levels.up  # < 0: the ray goes down, towards the floors
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(down < 0, float(np.max(levels.heights)) / -down, np.inf)


def pull_within_bound(
    joints: np.ndarray, transl: np.ndarray, bound: np.ndarray, move: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """People of `move` (N,) bool whose pelvis (joints (N, 24, 3) m, joint 0) lies beyond their depth
    bound (N,) m, moved rigidly along the pelvis's camera ray to it (size kept, the pelvis's image
    kept): a box that shows a person's upper body only (legs hidden by the people in front) makes a
    small crop and a body placed several times too far. Returns (joints, transl) (N, 24, 3), (N, 3)."""
    depth = joints[:, 0, 2]
    far = move & np.isfinite(bound) & (depth > bound) & (depth > 0)
    shift = np.zeros_like(transl)
    shift[far] = (bound[far] / depth[far] - 1.0)[:, None] * joints[far, 0]
    return joints + shift[:, None, :], transl + shift


def support_labels(levels: Levels, pose: np.ndarray) -> np.ndarray:
    """(N,) object array of support labels: the level's (level_label) for people on one, else
    NOT_STANDING when the pose is folded, else OFF_FLOOR."""
    out = np.where(pose == 0, NOT_STANDING, OFF_FLOOR).astype(object)
    for k in range(len(levels.heights)):
        out[levels.level == k] = level_label(k)
    return out


PLAUSIBLE_STATURE_M = (1.35, 2.05)  # the range the plausibility check counts people within


def person_measures(
    joints: np.ndarray, stature: np.ndarray, support: np.ndarray, levels: Levels | None,
    joints_before: np.ndarray | None = None, stature_before: np.ndarray | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Per person (N,), what `plausibility` summarises: stature m; support label; with joints_before
    (N, 24, 3) m, moved (the pelvis's displacement, m) and stature_before m; for people on a level,
    level_distance (signed distance of the feet (ankle midpoint of joints (N, 24, 3) m) from it, m)
    and lean (deg, their feet-to-head line from its up); NaN for the others."""
    from tasks.quality import HEAD, L_ANKLE, R_ANKLE

    n = len(stature)
    out = {"stature": np.asarray(stature, np.float64), "support": np.asarray(support, str)}
    if joints_before is not None:
        out["moved"] = np.linalg.norm(joints[:, 0] - joints_before[:, 0], axis=-1)
    if stature_before is not None:
        out["stature_before"] = np.asarray(stature_before, np.float64)
    dist, lean = np.full(n, np.nan), np.full(n, np.nan)
    if levels is not None and len(levels.heights):
        on = levels.level >= 0
        f = (joints[on, L_ANKLE] + joints[on, R_ANKLE]) / 2
        dist[on] = f @ levels.up + levels.heights[levels.level[on]]
        axis = joints[on, HEAD] - f
        cos = (axis @ levels.up) / np.maximum(np.linalg.norm(axis, axis=-1), 1e-9)
        lean[on] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    out["level_distance"], out["lean"] = dist, lean
    return out


def plausibility(measures: dict[str, np.ndarray]) -> dict[str, object]:
    """What can be checked without 3D truth, from person_measures (of one frame or of many
    concatenated): statures (median, share within PLAUSIBLE_STATURE_M, how many below and above),
    before the crowd step too; how far it moved people (median m); of the people on a level, the
    share whose feet are within ON_FLOOR_M of it and their median lean (deg); counts per support."""
    lo, hi = PLAUSIBLE_STATURE_M

    def statures(s: np.ndarray) -> dict[str, object]:
        return {
            "median_m": round(float(np.median(s)), 3) if len(s) else None,
            "within": round(float(((s >= lo) & (s <= hi)).mean()), 3) if len(s) else None,
            "below": int((s < lo).sum()), "above": int((s > hi).sum()),
        }  # fmt: skip

    labels, counts = np.unique(measures["support"], return_counts=True)
    out: dict[str, object] = {
        "people": len(measures["stature"]), "stature": statures(measures["stature"]),
        "support": {str(k): int(v) for k, v in zip(labels, counts, strict=True)},
    }  # fmt: skip
    if "stature_before" in measures:
        out["stature_before"] = statures(measures["stature_before"])
    if "moved" in measures and len(measures["moved"]):
        out["moved_median_m"] = round(float(np.median(measures["moved"])), 3)
    dist = measures["level_distance"]
    on = np.isfinite(dist)
    out["on_a_level"] = int(on.sum())
    if on.any():
        out["on_level_within_m"] = {str(ON_FLOOR_M): round(float((np.abs(dist[on]) <= ON_FLOOR_M).mean()), 3)}
        out["lean_median_deg"] = round(float(np.median(measures["lean"][on])), 2)
    return out
