"""Tile plan, tile-to-frame coordinates and the cross-tile, cross-level merge."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.detect import DET_COLUMNS, MIN_INPUT_PX, Tile, detect_tiles, merge, tile_plan


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(300, 20000),
    aspect=st.floats(0.5, 3.0),
    min_person=st.sampled_from([None, 40.0, 20.0, 9.0]),
    data=st.data(),
)
def test_every_person_is_whole_in_a_tile_of_a_level_responsible_for_it(
    height: int, aspect: float, min_person: float | None, data: st.DataObject
) -> None:
    width = int(height * aspect)
    tiles = tile_plan(height, width, min_person=min_person)
    for t in tiles:
        lh, lw = math.ceil(height / 2**t.level), math.ceil(width / 2**t.level)
        assert 0 <= t.x0 < t.x1 <= lw and 0 <= t.y0 < t.y1 <= lh
        assert t.x1 - t.x0 <= 416 and t.y1 - t.y0 <= 416
        assert t.interior == (t.x0 > 0, t.y0 > 0, t.x1 < lw, t.y1 < lh)
    smallest = 20.0 if min_person is None else min_person
    for _ in range(20):
        h = data.draw(st.floats(smallest, height))
        w = min(0.45 * h, width)
        x0 = data.draw(st.floats(0, width - w))
        y0 = data.draw(st.floats(0, height - h))
        owners = [t for t in tiles if t.band[0] <= h < t.band[1]]
        assert owners, f"no level is responsible for a {h:.0f} px person"
        s = 2.0 ** owners[0].level
        whole = [
            t for t in owners
            if t.x0 <= x0 / s and (x0 + w) / s <= t.x1 and t.y0 <= y0 / s and (y0 + h) / s <= t.y1
        ]  # fmt: skip
        assert whole, f"a {h:.0f} px person at ({x0:.0f}, {y0:.0f}) is cut in every tile of its level"
        if min_person is not None:
            # ... and reaches the detector at least MIN_INPUT_PX tall
            assert h / s >= min(MIN_INPUT_PX, 160.0 / 2), (h, owners[0].level)


def test_levels_and_bands_follow_the_pyramid() -> None:
    tiles = tile_plan(4096, 8192)
    levels = sorted({t.level for t in tiles})
    assert levels == list(range(len(levels)))
    bands = {t.level: t.band for t in tiles}
    assert bands[0] == (0.0, 160.0) and bands[1] == (160.0, 320.0) and bands[levels[-1]][1] == math.inf
    # The top level's band reaches the frame height.
    assert 160 * 2 ** levels[-1] >= 4096
    with pytest.raises(ValueError, match="below the input size"):
        tile_plan(1000, 1000, person_px=400)


def _tile(tid: int, level: int, x0: int, y0: int, x1: int, y1: int, band: tuple[float, float]) -> Tile:
    return Tile(tid, level, x0, y0, x1, y1, (x0 > 0, y0 > 0, True, True), band)


def test_tile_boxes_map_to_full_resolution_and_edges_flag_cuts() -> None:
    tiles = [_tile(0, 0, 0, 0, 416, 416, (0, 160)), _tile(1, 2, 200, 100, 616, 516, (640, math.inf))]

    def detector(images: list[np.ndarray]) -> list[np.ndarray]:
        assert all(im.shape == (416, 416, 3) for im in images)
        return [np.array([[10, 20, 30, 60, 0.9], [0, 50, 40, 90, 0.8]], np.float32) for _ in images]

    dets = detect_tiles(tiles, lambda t: np.zeros((416, 416, 3), np.uint8), detector)
    assert dets.shape == (4, len(DET_COLUMNS))
    np.testing.assert_allclose(dets[0, :4], [10, 20, 30, 60])
    np.testing.assert_allclose(dets[2, :4], [(200 + 10) * 4, (100 + 20) * 4, (200 + 30) * 4, (100 + 60) * 4])
    np.testing.assert_array_equal(dets[:, 5], [0, 0, 2, 2])
    # x1 = 0 touches the left edge: cut only where that edge is inside the frame (tile 1, x0 = 200).
    np.testing.assert_array_equal(dets[:, 7], [0, 0, 0, 1])


def _row(box: list[float], score: float, level: int, tile: int, cut: bool) -> list[float]:
    return [*box, score, level, tile, float(cut)]


def test_merge_drops_cut_duplicates_out_of_band_and_cross_level_repeats() -> None:
    tiles = [
        _tile(0, 0, 0, 0, 416, 416, (0, 160)),
        _tile(1, 0, 216, 0, 632, 416, (0, 160)),
        _tile(2, 1, 0, 0, 316, 208, (160, math.inf)),
    ]
    dets = np.array(
        [
            _row([380, 100, 416, 220], 0.95, 0, 0, True),  # person A cut by tile 0's right edge
            _row([380, 100, 440, 220], 0.80, 0, 1, False),  # person A whole in tile 1
            _row([100, 10, 150, 140], 0.60, 0, 0, False),  # person B (130 px) at its own level
            _row([98, 8, 152, 142], 0.90, 1, 2, False),  # person B again at level 1: out of its band
            _row([300, 0, 400, 400], 0.90, 0, 0, False),  # 400 px: far outside level 0's band
            _row([500, 0, 600, 380], 0.70, 1, 2, False),  # 380 px at level 1: in band
        ]
    )
    kept = merge(dets, tiles)
    got = {tuple(r[:4]) for r in kept}
    assert got == {(380, 100, 440, 220), (100, 10, 150, 140), (500, 0, 600, 380)}


def test_merge_keeps_a_cut_box_nobody_saw_whole() -> None:
    tiles = [_tile(0, 0, 0, 0, 416, 416, (0, 160))]
    dets = np.array([_row([380, 100, 416, 220], 0.9, 0, 0, True)])
    assert len(merge(dets, tiles)) == 1
    assert len(merge(np.zeros((0, 8)), tiles)) == 0


def test_tiles_above_the_stored_pyramid_equal_a_deeper_pyramid() -> None:
    from tasks.detect import read_tile
    from tasks.pyramid import downsample2x

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1001, 1503, 3), dtype=np.uint8)  # odd sizes: replicated edges
    deep = [image]
    for _ in range(4):
        deep.append(downsample2x(deep[-1]))
    stored = deep[:2]  # the ingest stopped at level 1
    for t in tile_plan(1001, 1503, input_size=(96, 96), person_px=40, max_person=1001):
        np.testing.assert_array_equal(read_tile(stored, t), deep[t.level][t.y0 : t.y1, t.x0 : t.x1])


def test_small_people_get_enlarged_levels_whose_tiles_equal_the_enlarged_frame() -> None:
    import cv2

    from tasks.detect import read_tile

    assert min(t.level for t in tile_plan(4096, 8192)) == 0
    assert min(t.level for t in tile_plan(4096, 8192, min_person=32)) == 0
    plan = tile_plan(4096, 8192, min_person=20)
    bands = {t.level: t.band for t in plan}
    assert min(bands) == -1 and bands[-1] == (0.0, 80.0) and bands[0] == (80.0, 160.0)
    assert min(t.level for t in tile_plan(4096, 8192, min_person=10)) == -2
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (301, 403, 3), dtype=np.uint8)  # odd sizes
    for k, smallest in ((-1, 20.0), (-2, 10.0)):
        f = 2**-k
        big = cv2.resize(image, (403 * f, 301 * f), interpolation=cv2.INTER_LINEAR)
        tiles = [t for t in tile_plan(301, 403, (96, 96), person_px=40, min_person=smallest) if t.level == k]
        assert tiles
        for t in tiles:
            np.testing.assert_array_equal(read_tile([image], t), big[t.y0 : t.y1, t.x0 : t.x1])


def test_merge_drops_body_parts_seen_at_a_finer_level() -> None:
    tiles = [_tile(0, 0, 0, 0, 416, 416, (0, 160)), _tile(1, 1, 0, 0, 416, 416, (160, math.inf))]
    whole = _row([100, 100, 180, 400], 0.8, 1, 1, False)  # 300 px: level 1's band
    head = _row([120, 100, 160, 150], 0.9, 0, 0, False)  # inside, 6x shorter, finer level
    legs = _row([110, 260, 170, 400], 0.7, 0, 0, False)
    neighbour = _row([185, 120, 215, 190], 0.6, 0, 0, False)  # a small person beside it: kept
    kept = merge(np.array([whole, head, legs, neighbour]), tiles)
    assert {tuple(r[:4]) for r in kept} == {(100, 100, 180, 400), (185, 120, 215, 190)}
    assert len(merge(np.array([whole, head, legs]), tiles, part_ratio=0)) == 3


def _standing_people(
    n: int, seed: int, roll_deg: float = 0.0, size: tuple[int, int] = (8192, 16384)
) -> np.ndarray:
    """(n, 4) boxes of people 1.5-1.9 m tall standing on a plane, seen by a pinhole camera 8 m up,
    pitched 12 degrees down (f = 12000 px, principal point at the centre, optional roll); only those
    whole in the frame."""
    rng = np.random.default_rng(seed)
    fh, fw = size
    f, pitch, roll = 12000.0, math.radians(12), math.radians(roll_deg)
    cp, sp, cr, sr = math.cos(pitch), math.sin(pitch), math.cos(roll), math.sin(roll)

    def project(p: np.ndarray) -> np.ndarray:  # world (x right, y up, z forward) -> pixels
        rel = p - [0.0, 8.0, 0.0]
        yc = -(rel[:, 1] * cp + rel[:, 2] * sp)  # camera y down
        zc = -rel[:, 1] * sp + rel[:, 2] * cp
        xc = rel[:, 0]
        xr, yr = cr * xc - sr * yc, sr * xc + cr * yc
        return np.stack([f * xr / zc + fw / 2, f * yr / zc + fh / 2], axis=1)

    out = []
    while len(out) < n:
        z = rng.uniform(15, 400)
        x = rng.uniform(-0.7, 0.7) * z
        h = rng.uniform(1.5, 1.9)
        foot = project(np.array([[x, 0.0, z]]))[0]
        head = project(np.array([[x, h, z]]))[0]
        ph = foot[1] - head[1]
        box = [foot[0] - 0.2 * ph, head[1], foot[0] + 0.2 * ph, foot[1]]
        if min(box[0], box[1]) > 2 and box[2] < fw - 2 and box[3] < fh - 2:
            out.append(box)
    return np.array(out)


@pytest.mark.parametrize("roll", [0.0, 4.0])
def test_height_prior_fitted_on_near_people_predicts_the_far_ones(roll: float) -> None:
    from tasks.detect import fit_height_prior

    boxes = _standing_people(400, seed=1, roll_deg=roll)
    h = boxes[:, 3] - boxes[:, 1]
    near, far = boxes[h >= 150], boxes[h < 80]
    assert len(near) >= 10 and len(far) >= 10
    prior, why = fit_height_prior(near, (8192, 16384))
    assert prior is not None, why
    assert prior.a > 0 and prior.tolerance >= 2.0
    pred = prior.height(0.5 * (far[:, 0] + far[:, 2]), far[:, 3])
    ratio = (far[:, 3] - far[:, 1]) / pred
    # A line is exact only for a level camera; pitched 12 degrees down, extrapolated to people 2-10x
    # smaller than those fitted, it overestimates them by up to ~1.4x: well inside the tolerance.
    assert ratio.min() > 0.65 and ratio.max() < 1.2, (ratio.min(), ratio.max())
    assert (np.abs(np.log(ratio)) < math.log(prior.tolerance)).all()
    # The horizon (h = 0) at the centre column: 4096 - 12000 tan(12 deg) = row 1545 (roll moves it
    # little at the centre); nobody stands above it.
    horizon = -(prior.b * 8192 + prior.c) / prior.a
    assert abs(horizon - 1545) < 150, horizon
    if roll:
        # Roll tilts the horizon: heights then change along x at a fixed row.
        assert abs(prior.b) > 1e-4


def test_height_prior_refuses_a_frame_that_is_not_one_ground_plane() -> None:
    from tasks.detect import fit_height_prior

    boxes = _standing_people(200, seed=2)
    frame = (8192, 16384)
    assert fit_height_prior(boxes[:5], frame)[0] is None
    flipped = boxes.copy()
    flipped[:, [1, 3]] = frame[0] - boxes[:, [3, 1]]  # upside down: heights shrink towards the bottom
    prior, why = fit_height_prior(flipped, frame)
    assert prior is None and "grow towards the bottom" in why
    rng = np.random.default_rng(0)
    scattered = boxes.copy()
    scattered[:, 1] = scattered[:, 3] - (scattered[:, 3] - scattered[:, 1]) * rng.uniform(
        0.2, 5.0, len(boxes)
    )
    scattered = scattered[scattered[:, 1] > 2]
    prior, why = fit_height_prior(scattered, frame)
    assert prior is None, prior
    # Boxes at the frame border are cut people: they do not count.
    edge = boxes.copy()
    edge[:, 3] = frame[0]
    assert "0 people whole" in fit_height_prior(edge, frame)[1]


def test_short_parts_dropped_by_the_height_line_people_behind_others_kept() -> None:
    """detect.part_height: a torso box inside a standing person goes; a person standing right behind
    another (half their box inside the nearer one's, feet visible and higher in the image) stays, and
    so does everyone on the line."""
    from tasks.boxes import coverage
    from tasks.detect import drop_short_parts, fit_height_prior

    frame = (8192, 16384)
    boxes = _standing_people(60, seed=4)
    prior, _ = fit_height_prior(boxes, frame)
    assert prior is not None
    near = int(np.argmax(boxes[:, 3] - boxes[:, 1]))
    x0, y0, x1, y1 = boxes[near]
    h = y1 - y0
    torso = [x0, y0, x1, y0 + 0.45 * h]  # an upper body: its bottom is nobody's feet
    feet_y = y1 - 0.3 * h  # a person behind: farther, so feet higher and shorter, as the line says
    hb = float(prior.height(x0 + 0.3 * (x1 - x0), feet_y))
    behind = [x0 + 0.3 * (x1 - x0) - 0.2 * hb, feet_y - hb, x0 + 0.3 * (x1 - x0) + 0.2 * hb, feet_y]
    rows = np.zeros((len(boxes) + 2, len(DET_COLUMNS)))
    rows[:, :4] = np.vstack([boxes, torso, behind])
    rows[:, 4] = 0.8
    assert coverage(rows[-1:, :4], rows[near : near + 1, :4])[0, 0] >= 0.5  # really half inside
    kept = drop_short_parts(rows, frame, 0.7)
    assert len(kept) == len(boxes) + 1
    assert not any(np.allclose(r[:4], torso) for r in kept)
    assert any(np.allclose(r[:4], behind) for r in kept)
    assert len(drop_short_parts(rows, frame, max_ratio=None)) == len(rows)
    # no height line (too few people): nothing is dropped
    assert len(drop_short_parts(rows[[near, -2]], frame, 0.7)) == 2


def test_pruning_drops_tiles_above_the_horizon_and_outside_the_predicted_heights() -> None:
    from tasks.detect import HeightPrior, prune_tiles

    # h = 0.1 (y - 2000): horizon at row 2000, 100 px people at row 3000, 600 px at row 8000
    prior = HeightPrior(a=0.1, b=0.0, c=-200.0, tolerance=2.0, people=50)
    sky = _tile(0, 0, 0, 0, 416, 416, (0, 160))  # rows 0-416
    far = _tile(1, 0, 0, 2800, 416, 3216, (0, 160))  # 80-122 px people
    near = _tile(2, 0, 0, 7584, 416, 8000, (0, 160))  # 558-600 px people: a factor 2 still > 200
    far_l3 = _tile(3, 3, 0, 100, 416, 516, (640, 1280))  # rows 800-4128: up to 213 px, x2 < 512
    near_l3 = _tile(4, 3, 0, 584, 416, 1000, (640, 1280))  # rows 4672-8000: 267-600 px, x2 >= 512
    kept = {t.tile_id for t in prune_tiles([sky, far, near, far_l3, near_l3], prior)}
    assert kept == {1, 4}


def test_pruned_detection_finds_the_same_people_with_fewer_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.detect as det
    from tasks.boxes import greedy_recall_match

    frame = (8192, 16384)
    people = _standing_people(600, seed=3)
    image = np.zeros((*frame, 3), np.uint8)
    # A stand-in detector that knows the truth: it finds the people whole inside the tile it is given
    # and 12-400 input px tall. Tiles are recognised by the array that read_tile handed out.
    handed: dict[int, tuple[Tile, np.ndarray]] = {}
    real_read = det.read_tile

    def read(levels: list[Any], tile: Tile) -> np.ndarray:
        pixels = real_read(levels, tile)
        handed[id(pixels)] = (tile, pixels)
        return pixels

    def detector(images: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for im in images:
            t, _ = handed.pop(id(im))
            b = people / 2.0**t.level - [t.x0, t.y0, t.x0, t.y0]
            h = b[:, 3] - b[:, 1]
            inside = (b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= t.x1 - t.x0) & (b[:, 3] <= t.y1 - t.y0)
            found = b[inside & (h >= 12) & (h <= 400)]
            out.append(np.c_[found, np.full(len(found), 0.9)])
        return out

    monkeypatch.setattr(det, "read_tile", read)
    tiles, found = {}, {}
    calls = [0]

    def counted(images: list[np.ndarray]) -> list[np.ndarray]:
        calls[0] += len(images)
        return detector(images)

    for prune in (False, True):
        calls[0] = 0
        dets = det.detect_image(image, counted, prune=prune)
        tiles[prune] = calls[0]
        found[prune] = set(np.flatnonzero(greedy_recall_match(dets[:, :4], people) >= 0).tolist())
    assert tiles[False] == len(tile_plan(*frame, (416, 416)))
    assert tiles[True] < 0.6 * tiles[False], tiles
    # Greedy matching may pair two overlapping people the other way round; nobody is lost.
    assert len(found[True]) >= len(found[False])
    assert len(found[True] & found[False]) >= len(found[False]) - 2
    assert len(found[False]) >= 0.95 * len(people)
