"""Who stands on which floor (tasks/support.py): the pose judgement, the levels, the snap's bounds."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.support import (
    FLOOR,
    NOT_STANDING,
    OFF_FLOOR,
    STATURE_PRIOR_M,
    Levels,
    find_levels,
    person_measures,
    plausibility,
    snap,
    standing_pose,
    support_labels,
)

UP = np.array([0.0, -1.0, 0.0])  # camera level, y down: up is -y


def _skeleton(hip_deg: float, knee_deg: float, conf: float = 1.0) -> np.ndarray:
    """(17, 3) keypoints px of a person seen from the side: trunk 50 px straight up from the hips at
    (100, 100), thigh and shin 45 px each; hip_deg the trunk-thigh angle (180: in line), knee_deg the
    thigh-shin angle (180: straight)."""
    kp = np.zeros((17, 3))
    hip = np.array([100.0, 100.0])
    thigh_dir = np.radians(180.0 - hip_deg)  # from straight down, towards +x (forward)
    knee = hip + 45 * np.array([np.sin(thigh_dir), np.cos(thigh_dir)])
    shin_dir = thigh_dir - np.radians(180.0 - knee_deg)
    ankle = knee + 45 * np.array([np.sin(shin_dir), np.cos(shin_dir)])
    for j in (5, 6):
        kp[j] = [100.0, 50.0, conf]
    for j in (11, 12):
        kp[j] = [*hip, conf]
    for j in (13, 14):
        kp[j] = [*knee, conf]
    for j in (15, 16):
        kp[j] = [*ankle, conf]
    return kp


def test_standing_pose_tells_standing_from_seated_riding_and_crouching() -> None:
    standing = _skeleton(178, 178)
    walking = _skeleton(160, 165)
    seated = _skeleton(90, 90)  # thigh forward, shin down: the ankle reaches one shin below the hip
    riding = _skeleton(100, 140)  # leaning forward on the saddle, the pedal at its lowest
    crouching = _skeleton(60, 50)
    hidden = _skeleton(178, 178, conf=0.1)  # legs the pose network is unsure of
    pose = standing_pose(np.stack([standing, walking, seated, riding, crouching, hidden]))
    assert pose[:5].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert np.isnan(pose[5])
    # one extended leg is enough (a walking person's swing leg may fold)
    one = _skeleton(178, 178)
    one[[12, 14, 16]] = _skeleton(90, 90)[[12, 14, 16]]
    assert standing_pose(one[None]).tolist() == [1.0]


def _feet(heights: list[float], depth: float = 20.0) -> np.ndarray:
    """(N, 3) feet at x spread, depth z, camera heights `heights` (feet at y = +h, up = -y)."""
    n = len(heights)
    return np.stack([np.linspace(-5, 5, n), np.asarray(heights), np.full(n, depth)], 1)


def test_levels_find_a_terrace_and_leave_seated_and_airborne_people_off() -> None:
    rng = np.random.default_rng(0)
    floor = list(6.0 * (1 + 0.05 * rng.standard_normal(40)))  # camera 6 m above the floor, 5% depth noise
    terrace = list(3.5 * (1 + 0.05 * rng.standard_normal(15)))  # a terrace 2.5 m up
    airborne = [1.2]  # feet implying a camera height a third of the terrace's: high in the air
    seated = [6.0, 6.0, 6.0]
    feet = _feet(floor + terrace + airborne + seated)
    statures = np.full(len(feet), 1.72)
    candidates = np.array([True] * 56 + [False] * 3)  # the seated people's pose is folded
    levels = find_levels(feet, UP, statures, candidates)
    assert levels.warning is None and len(levels.heights) == 2
    assert levels.heights == pytest.approx([6.0, 3.5], rel=0.05)
    assert (levels.level[:40] == 0).mean() >= 0.95 and (levels.level[40:55] == 1).mean() >= 0.95
    assert levels.level[55] == -1 and (levels.level[56:] == -1).all()
    pose = np.array([1.0] * 56 + [0.0] * 3)
    labels = support_labels(levels, pose)
    assert (
        labels[0] == FLOOR
        and labels[45] == "level_2"
        and labels[55] == OFF_FLOOR
        and labels[58] == NOT_STANDING
    )
    # planes: the floor is up . X + 6 = 0 (the feet at y = +6 lie on it)
    assert levels.plane(0)[:3] @ feet[0] * 0 + levels.plane(0)[3] == pytest.approx(levels.heights[0])
    planes = levels.planes()
    assert np.isnan(planes[55]).all() and planes[45, 3] == pytest.approx(levels.heights[1])


def test_a_level_close_to_the_floor_is_depth_noise_not_a_terrace() -> None:
    rng = np.random.default_rng(1)
    heights = list(6.0 * (1 + 0.12 * rng.standard_normal(60)))  # noisy depths, one floor
    levels = find_levels(_feet(heights), UP, np.full(60, 1.72), np.ones(60, bool))
    assert len(levels.heights) == 1 and (levels.level == 0).mean() > 0.9


def test_a_frame_without_a_common_floor_gets_a_warning_and_no_level() -> None:
    heights = list(np.geomspace(1.0, 40.0, 30))  # everyone at a different height: stands, not a floor
    levels = find_levels(_feet(heights), UP, np.full(30, 1.72), np.ones(30, bool))
    assert len(levels.heights) == 0 and (levels.level == -1).all()
    assert levels.warning is not None and "no floor" in levels.warning
    few = find_levels(_feet([6.0, 6.0, 6.1]), UP, np.full(3, 1.72), np.ones(3, bool))
    assert len(few.heights) == 0  # three people cannot make a floor (min_people)


def test_snap_stands_people_on_their_level_within_the_stature_prior() -> None:
    # one level 6 m below the camera; feet implying 6, 5.5 (a 9% depth error), 4 (scaled about the
    # camera onto the floor a 1.72 m body would be 2.58 m); one person on no level, one on no level
    # with a 1.3 m body; then people the finetune took far off their level, or above the camera
    feet = _feet([6.0, 5.5, 4.0, 6.0, 6.0])
    transl = feet - [0.0, 0.9, 0.0]  # the body's own feet 0.9 m below its origin (y down)
    levels = Levels(UP, np.array([6.0]), np.array([0, 0, 0, -1, -1]))
    statures = np.array([1.72, 1.72, 1.72, 1.72, 1.3])
    scale, moved, after = snap(feet, transl, levels, statures)
    assert after.level.tolist() == [0, 0, 0, -1, -1]
    lo, hi = STATURE_PRIOR_M
    assert scale.tolist() == pytest.approx([1.0, 6.0 / 5.5, hi / 1.72, 1.0, lo / 1.3])
    np.testing.assert_allclose(moved[[0, 3]], transl[[0, 3]])
    np.testing.assert_allclose(moved[1], transl[1] * 6.0 / 5.5)  # about the camera: the image kept
    np.testing.assert_allclose(moved[4], transl[4] * lo / 1.3)
    # the feet (scale x the body's feet + transl) on the level for everyone on it, the giant too: at
    # the ground's depth along its feet's ray, with the prior's largest stature
    stood = scale[:, None] * (feet - transl) + moved
    assert stood[:3] @ UP + 6.0 == pytest.approx(np.zeros(3), abs=1e-9)
    np.testing.assert_allclose(stood[2], feet[2] * 1.5)  # where the ray meets the floor
    assert (statures * scale >= lo - 1e-9).all() and (statures * scale <= hi + 1e-9).all()
    far = _feet([2.5, -1.0])  # the level 2.4x farther than the feet imply; feet above the camera
    scale, moved, after = snap(far, far, Levels(UP, np.array([6.0]), np.array([0, 0])), np.full(2, 1.72))
    assert after.level.tolist() == [-1, -1] and scale.tolist() == [1.0, 1.0]
    np.testing.assert_allclose(moved, far)


def test_plausibility_counts_statures_support_and_feet_on_their_level() -> None:
    joints = np.zeros((4, 24, 3))
    for i, y in enumerate([6.0, 6.05, 6.5, 6.0]):  # feet (ankles 7, 8) at y, head (15) 1.6 m above
        joints[i, [7, 8], 1] = y
        joints[i, 15, 1] = y - 1.6
    levels = Levels(UP, np.array([6.0]), np.array([0, 0, 0, -1]))
    m = person_measures(
        joints, np.array([1.7, 1.3, 2.1, 1.8]), np.array([FLOOR] * 3 + [NOT_STANDING]), levels,
        joints_before=joints - [0, 0, 1.0], stature_before=np.full(4, 1.7),
    )  # fmt: skip
    p = plausibility(m)
    assert p["people"] == 4 and p["stature"] == {"median_m": 1.75, "within": 0.5, "below": 1, "above": 1}
    assert p["stature_before"]["within"] == 1.0 and p["moved_median_m"] == pytest.approx(1.0)
    assert p["support"] == {FLOOR: 3, NOT_STANDING: 1} and p["on_a_level"] == 3
    assert p["on_level_within_m"]["0.1"] == pytest.approx(2 / 3, abs=1e-3)  # 0, 5 cm in; 50 cm out
    assert p["lean_median_deg"] == pytest.approx(0.0, abs=1e-6)


def test_a_small_groups_floor_is_searched_within_a_few_degrees_of_its_fitted_up() -> None:
    """Ten adults on a floor 1.6 m below the camera, 6-30 m away, seen along an up fitted 6 degrees
    off in pitch: along it their implied camera heights spread from about -1.5 to 0.5 m and no five
    agree; turned back within max_tilt_deg, all ten stand on the floor. A crowd of that size is not
    searched (its fitted up is trusted), and a given search of 0 degrees changes nothing."""
    from tasks.support import _tilted, steadiest_levels

    rng = np.random.default_rng(4)
    n = 10
    feet = np.stack([rng.uniform(-3, 3, n), np.full(n, 1.6), rng.uniform(6, 30, n)], 1)  # y down: floor below
    statures = rng.uniform(1.6, 1.85, n)
    cands = np.ones(n, bool)
    fitted = _tilted(UP, -6.0, 0.0)
    assert find_levels(feet, fitted, statures, cands).warning is not None
    found = steadiest_levels(feet, fitted, statures, cands, small=20, max_tilt_deg=8.0)
    assert (found.level == 0).all() and abs(found.heights[0] - 1.6) < 0.3
    assert np.degrees(np.arccos(found.up @ UP)) <= 2.0 + 1e-6  # back to within a grid step of level
    assert steadiest_levels(feet, fitted, statures, cands, small=10, max_tilt_deg=8.0).warning is not None
    assert steadiest_levels(feet, fitted, statures, cands, small=20, max_tilt_deg=0.0).warning is not None


def test_depth_bound_is_where_a_box_bottom_ray_meets_the_lowest_level() -> None:
    """Camera 10 m above the floor (and 7 m above a terrace), looking level: y down, up = -y."""
    from tasks.support import depth_bound

    levels = Levels(np.array([0.0, -1.0, 0.0]), np.array([10.0, 7.0]), np.array([0, 1, -1]))
    focal, pp = 1000.0, (500.0, 500.0)
    # box bottoms 100 px and 50 px below the horizon: the floor 10 m down at z = 100 m and 200 m
    boxes = np.array([[450, 0, 550, 600], [450, 0, 550, 550], [450, 0, 550, 500], [450, 0, 550, 400.0]])
    got = depth_bound(boxes, focal, pp, levels)
    assert got[:2] == pytest.approx([100.0, 200.0])  # the lowest level (10 m), not the terrace's 70 m
    assert np.isinf(got[2:]).all()  # at and above the horizon: no bound
    empty = Levels(levels.up, np.zeros(0), np.full(4, -1))
    assert np.isinf(depth_bound(boxes, focal, pp, empty)).all()


def test_people_beyond_their_bound_are_pulled_along_their_ray_rigidly() -> None:
    from tasks.support import pull_within_bound

    joints = np.zeros((3, 24, 3))
    joints[:, 0] = [[2.0, 1.0, 400.0], [2.0, 1.0, 400.0], [1.0, 0.0, 50.0]]
    joints[:, 1] = joints[:, 0] + [0.1, 0.5, 0.0]  # another joint: the body keeps its shape
    transl = joints[:, 0] - [0.0, 0.2, 0.0]
    bound = np.array([100.0, 100.0, 100.0])
    move = np.array([True, False, True])  # the second is on a level: not moved
    j, t = pull_within_bound(joints, transl, bound, move)
    assert j[0, 0] == pytest.approx([0.5, 0.25, 100.0])  # same ray, at the bound
    assert j[0, 1] - j[0, 0] == pytest.approx([0.1, 0.5, 0.0])
    assert t[0] - j[0, 0] == pytest.approx([0.0, -0.2, 0.0])
    assert (j[1:] == joints[1:]).all() and (t[1:] == transl[1:]).all()  # on a level / within the bound
