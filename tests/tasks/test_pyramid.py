from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.pyramid import downsample2x, pyramid_levels, strip_starts


@given(st.integers(1, 200_000), st.integers(1, 200_000), st.integers(2, 5000))
def test_levels_halve_with_ceiling_until_the_shorter_side_is_below_min_side(
    h: int, w: int, min_side: int
) -> None:
    levels = pyramid_levels(h, w, min_side)
    assert (levels[0].height, levels[0].width) == (h, w)
    for prev, cur in itertools.pairwise(levels):
        assert cur.index == prev.index + 1 and cur.scale == 2 * prev.scale
        assert (cur.height, cur.width) == (-(-prev.height // 2), -(-prev.width // 2))
        # every level but the last was still large enough to be halved
        assert min(prev.height, prev.width) >= min_side
    assert min(levels[-1].height, levels[-1].width) < min_side
    # a level-k pixel covers 2^k full-resolution pixels: the footprint always covers the frame
    for lv in levels:
        assert lv.height * lv.scale >= h > (lv.height - 1) * lv.scale
        assert lv.width * lv.scale >= w > (lv.width - 1) * lv.scale


def test_levels_of_gigapixel_frame() -> None:
    levels = pyramid_levels(16384, 32768, 1024)
    assert [(lv.height, lv.width) for lv in levels] == [
        (16384, 32768),
        (8192, 16384),
        (4096, 8192),
        (2048, 4096),
        (1024, 2048),
        (512, 1024),
    ]
    assert len(pyramid_levels(600, 1116, 1024)) == 1


@pytest.mark.parametrize("bad", [(0, 5, 1024), (5, -1, 1024), (5, 5, 1)])
def test_levels_reject_bad_sizes(bad: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        pyramid_levels(*bad)


@given(st.integers(1, 100_000), st.integers(1, 5000))
def test_strips_tile_the_rows_exactly(h: int, strip: int) -> None:
    ranges = strip_starts(h, strip)
    assert ranges[0][0] == 0 and ranges[-1][1] == h
    for (a0, a1), (b0, _) in itertools.pairwise(ranges):
        assert a1 == b0 and a1 - a0 == strip
    assert 0 < ranges[-1][1] - ranges[-1][0] <= strip


def _naive_downsample(a: np.ndarray) -> np.ndarray:
    h, w, c = a.shape
    out = np.zeros(((h + 1) // 2, (w + 1) // 2, c), np.uint8)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            ys = [min(2 * i, h - 1), min(2 * i + 1, h - 1)]
            xs = [min(2 * j, w - 1), min(2 * j + 1, w - 1)]
            s = sum(a[y, x].astype(int) for y in ys for x in xs)
            out[i, j] = (s + 2) // 4
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3, 4]), st.integers(0, 2**32 - 1))
def test_downsample_is_the_rounded_2x2_mean_with_replicated_edges(h: int, w: int, c: int, seed: int) -> None:
    a = np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)
    np.testing.assert_array_equal(downsample2x(a), _naive_downsample(a))


def test_downsample_rounds_half_up_and_keeps_orientation() -> None:
    a = np.zeros((2, 4, 3), np.uint8)
    a[:, 2:, 0] = 255  # right half red
    a[0, 0, 1], a[1, 0, 1] = 1, 1  # sum 2 -> (2 + 2) // 4 = 1
    out = downsample2x(a)
    assert out.shape == (1, 2, 3)
    assert out[0, 0].tolist() == [0, 1, 0] and out[0, 1].tolist() == [255, 0, 0]
    with pytest.raises(ValueError):
        downsample2x(a.astype(np.uint16))
    with pytest.raises(ValueError):
        downsample2x(a[..., :2])


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.sampled_from([1, 3]), st.integers(0, 2**32 - 1))
def test_downsample_into_rows_of_a_larger_buffer(h: int, w: int, c: int, seed: int) -> None:
    a = np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)
    buf = np.full((20, (w + 1) // 2, c), 7, np.uint8)
    got = downsample2x(a, out=buf[3 : 3 + (h + 1) // 2])
    assert np.shares_memory(got, buf)
    np.testing.assert_array_equal(buf[3 : 3 + (h + 1) // 2], _naive_downsample(a))
    assert (buf[:3] == 7).all() and (buf[3 + (h + 1) // 2 :] == 7).all()  # nothing written outside


def test_chunk_cache_reads_each_chunk_once_and_returns_the_same_pixels(tmp_path: Path) -> None:
    import zarr

    from tasks.pyramid import ChunkCache

    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)
    z = zarr.create_array(store=str(tmp_path / "a.zarr"), shape=data.shape, chunks=(64, 64, 3), dtype="uint8")
    z[:] = data
    view = ChunkCache(z, max_chunks=100)
    for y0, x0, h, w in [(0, 0, 10, 10), (50, 60, 100, 200), (250, 450, 50, 50), (290, 0, 100, 600)]:
        np.testing.assert_array_equal(view[y0 : y0 + h, x0 : x0 + w], data[y0 : y0 + h, x0 : x0 + w])
    reads = view.reads
    view[50:150, 60:260]  # already cached
    assert view.reads == reads
    assert reads <= 5 * 8  # never more than the 5 x 8 chunks of the array
