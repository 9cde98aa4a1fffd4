"""Tile plan, tile-to-frame coordinates and the cross-tile, cross-level merge."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.detect import DET_COLUMNS, Tile, detect_tiles, merge, tile_plan


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(300, 20000),
    aspect=st.floats(0.5, 3.0),
    data=st.data(),
)
def test_every_person_is_whole_in_a_tile_of_a_level_responsible_for_it(
    height: int, aspect: float, data: st.DataObject
) -> None:
    width = int(height * aspect)
    tiles = tile_plan(height, width)
    for t in tiles:
        lh, lw = math.ceil(height / 2**t.level), math.ceil(width / 2**t.level)
        assert 0 <= t.x0 < t.x1 <= lw and 0 <= t.y0 < t.y1 <= lh
        assert t.x1 - t.x0 <= 416 and t.y1 - t.y0 <= 416
        assert t.interior == (t.x0 > 0, t.y0 > 0, t.x1 < lw, t.y1 < lh)
    for _ in range(20):
        h = data.draw(st.floats(20, height))
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


def test_merge_drops_body_parts_seen_at_a_finer_level() -> None:
    tiles = [_tile(0, 0, 0, 0, 416, 416, (0, 160)), _tile(1, 1, 0, 0, 416, 416, (160, math.inf))]
    whole = _row([100, 100, 180, 400], 0.8, 1, 1, False)  # 300 px: level 1's band
    head = _row([120, 100, 160, 150], 0.9, 0, 0, False)  # inside, 6x shorter, finer level
    legs = _row([110, 260, 170, 400], 0.7, 0, 0, False)
    neighbour = _row([185, 120, 215, 190], 0.6, 0, 0, False)  # a small person beside it: kept
    kept = merge(np.array([whole, head, legs, neighbour]), tiles)
    assert {tuple(r[:4]) for r in kept} == {(100, 100, 180, 400), (185, 120, 215, 190)}
    assert len(merge(np.array([whole, head, legs]), tiles, part_ratio=0)) == 3
