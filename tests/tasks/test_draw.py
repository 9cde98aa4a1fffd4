"""Pictures: the ground frame, and people placed where they stand in the bird's-eye and side views."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.draw import (
    _SUPPORT_RGB,
    DRAW_MAX_MEGAPIXELS,
    DRAW_MIN_SIDE,
    birdseye,
    draw_scale,
    ground_axes,
    label_people,
    overlay,
    region,
    side_view,
)
from tasks.support import FLOOR, NOT_STANDING, OFF_FLOOR


def _people(xz: list[tuple[float, float]], ground_y: float = 1.5) -> np.ndarray:
    """(N, 24, 3) stick people standing on the level ground y = ground_y (camera frame, y down)."""
    j = np.zeros((len(xz), 24, 3))
    for i, (x, z) in enumerate(xz):
        j[i, :, 0], j[i, :, 2] = x, z
        j[i, 7, 1] = j[i, 8, 1] = ground_y  # ankles
        j[i, 0, 1] = ground_y - 0.9  # pelvis
        j[i, 15, 1] = ground_y - 1.6  # head
    return j


def test_ground_axes_of_a_level_ground_below_the_camera() -> None:
    plane = np.array([0.0, -1.0, 0.0, 1.5])  # -y + 1.5 = 0: the ground 1.5 m below (y down)
    origin, right, fwd, up = ground_axes(plane)
    np.testing.assert_allclose(origin, [0, 1.5, 0])
    np.testing.assert_allclose(right, [1, 0, 0])
    np.testing.assert_allclose(fwd, [0, 0, 1])
    np.testing.assert_allclose(up, [0, -1, 0])


def _centroid(img: np.ndarray, colour_mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(colour_mask)
    return float(xs.mean()), float(ys.mean())


def _dots(img: np.ndarray, rgb: tuple[int, int, int], below: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rows and columns of exactly colour rgb under the header (the legend's swatches)."""
    ys, xs = np.nonzero((img == np.asarray(rgb, np.uint8)).all(2))
    keep = ys > below
    return ys[keep], xs[keep]


def test_birdseye_puts_people_where_they_stand() -> None:
    plane = np.array([0.0, -1.0, 0.0, 1.5])
    joints = _people([(-5.0, 10.0), (5.0, 30.0)])
    img = birdseye(
        joints, plane, focal=1000.0, image_wh=(2000, 1000), support=np.array([FLOOR, NOT_STANDING])
    )
    assert img.shape == (1024, 1024, 3)
    # each person's dot in its support colour: the near one (x -5 m, 10 m ahead) is left of and lower
    # than the far one (x +5 m, 30 m ahead)
    (ny, nx), (fy, fx) = _dots(img, _SUPPORT_RGB[FLOOR]), _dots(img, _SUPPORT_RGB[NOT_STANDING])
    assert len(nx) > 10 and len(fx) > 10
    assert nx.mean() < 512 < fx.mean() and ny.mean() > fy.mean()
    # one scale on both axes: 10 m across (x) is 20 m ahead (z) halved
    assert abs((fx.mean() - nx.mean()) - (ny.mean() - fy.mean()) / 2) < 3
    # the legend names both classes with their swatches in the header
    head = img[:80]
    for rgb in (_SUPPORT_RGB[FLOOR], _SUPPORT_RGB[NOT_STANDING]):
        assert (head == np.asarray(rgb, np.uint8)).all(2).sum() > 100


def _ink(img: np.ndarray) -> np.ndarray:
    """Dark pixels: text, tick labels, the camera's marker."""
    return img.max(2) < 90


def test_birdseye_has_axis_labels_and_the_camera_at_x_0() -> None:
    plane = np.array([0.0, -1.0, 0.0, 1.5])
    floor = np.array([FLOOR, FLOOR])
    img = birdseye(_people([(-5.0, 10.0), (5.0, 30.0)]), plane, 1000.0, (2000, 1000), floor, size=1024)
    ink = _ink(img)
    assert ink[80:-56, :70].sum() > 400  # the y tick labels and the vertical title on the left
    assert ink[-56:].sum() > 400  # the x tick labels and the title below
    assert ink[:75].sum() > 1000  # the title, note and legend on top
    # the camera's dark marker at the plot's bottom, midway between the people at x -5 m and +5 m
    _, xs = _dots(img, _SUPPORT_RGB[FLOOR])
    mid = round((xs[xs < xs.mean()].mean() + xs[xs > xs.mean()].mean()) / 2)
    bottom = ink[-56 - 40 : -56]
    assert bottom[:, mid - 10 : mid + 11].sum() > 50
    assert not bottom[:, mid - 40 : mid - 12].any()  # nothing dark just left of it ("camera" is right)


def test_side_view_draws_heights_above_the_ground() -> None:
    plane = np.array([0.0, -1.0, 0.0, 1.5])
    joints = _people([(0.0, 10.0), (0.0, 20.0)])
    joints[1, :, 1] -= 1.0  # the second person floats 1 m above the ground
    img = side_view(joints, plane, np.array([FLOOR, OFF_FLOOR]))
    (ay, ax), (by, bx) = _dots(img, _SUPPORT_RGB[FLOOR]), _dots(img, _SUPPORT_RGB[OFF_FLOOR])
    assert ax.mean() < bx.mean()  # nearer is left
    metre = (ay.max() - ay.min()) / 1.6  # the first person's ankles to head: 1.6 m
    assert by.max() == pytest.approx(ay.max() - metre, abs=3)  # its feet drawn 1 m higher
    # the camera, 1.5 m above the ground, marked at depth 0 on the left at its height
    plot = _ink(img[96:-56, 79:-17])
    ys, _ = np.nonzero(plot[:, :40])
    assert len(ys) > 20
    camera_row = 96 + ys.mean()
    assert camera_row == pytest.approx(ay.max() - 1.5 * metre, abs=4)


def test_side_view_keeps_the_people_readable_under_a_high_camera() -> None:
    plane = np.array([0.0, -1.0, 0.0, 30.0])  # a camera 30 m up
    joints = _people([(0.0, 40.0), (0.0, 80.0)], ground_y=30.0)
    img = side_view(joints, plane, np.array([FLOOR, FLOOR]), width=1024, height=512)
    ys, _ = _dots(img, _SUPPORT_RGB[FLOOR])
    assert ys.max() - ys.min() > 0.4 * (512 - 96 - 56)  # 1.6 m still fills much of the view's height
    assert _ink(img[80:96]).sum() > 100  # the camera noted above the view


def test_label_people_writes_ids_above_boxes_larger_first_without_overlap() -> None:
    img = np.full((600, 800, 3), 128, np.uint8)
    boxes = np.array([
        [100.0, 200.0, 160.0, 400.0],  # tall: labelled
        [110.0, 205.0, 170.0, 380.0],  # its tag would overlap the first's: left out
        [500.0, 300.0, 510.0, 310.0],  # 10 px: too small
        [400.0, 100.0, 460.0, 250.0],
    ])  # fmt: skip
    written = label_people(img, boxes, np.array([7, 8, 9, 123]))
    assert written == 2
    tag = (img == 20).all(2)  # the tags' near-black background
    white = img.min(2) > 180  # the ids' strokes (anti-aliased)
    above = slice(170, 200)
    assert tag[above, 100:130].sum() > 100 and white[above, 100:130].sum() > 5
    assert tag[70:100, 400:460].sum() > tag[above, 100:130].sum()  # "123" is wider than "7"
    assert not tag[250:320, 480:530].any()  # no tag for the small box
    assert tag[-40:, :300].sum() > 1000  # the note saying 2 of 4 ids are shown
    # tags differ with the id (the text is drawn, not a blank box)
    a, b = np.full((200, 200, 3), 128, np.uint8), np.full((200, 200, 3), 128, np.uint8)
    label_people(a, np.array([[50.0, 80.0, 90.0, 190.0]]), np.array([1]))
    label_people(b, np.array([[50.0, 80.0, 90.0, 190.0]]), np.array([4]))
    assert (a[50:80] != b[50:80]).any()


def test_overlay_writes_ids_only_when_given() -> None:
    img = np.full((400, 400, 3), 128, np.uint8)
    boxes = np.array([[100.0, 100.0, 140.0, 200.0, 0.9]])
    plain = overlay(img, 0.5, boxes * [2, 2, 2, 2, 1], None)
    named = overlay(img, 0.5, boxes * [2, 2, 2, 2, 1], None, ids=np.array([5]))
    assert not (plain == 20).all(2).any()
    assert (named[70:100, 95:130] == 20).all(2).sum() > 80  # above the box drawn at half scale


def test_region_draws_at_the_given_scale() -> None:
    pixels = np.full((50 * 4, 80 * 4, 3), 128, np.uint8)  # a 80x50 region read from (1000, 2000), 4x
    boxes = np.array([[1010.0, 2010.0, 1030.0, 2040.0, 0.9]])
    out = region(
        pixels, (1000, 2000), boxes, np.zeros((1, 17, 3)), np.zeros((0, 10, 3)), np.zeros((1, 3), int),
        1000.0, (0.0, 0.0), scale=4.0,
    )  # fmt: skip
    red = (out[..., 0] > 200) & (out[..., 1] < 80)
    ys, xs = np.nonzero(red)
    assert xs.min() == pytest.approx(40, abs=2) and xs.max() == pytest.approx(120, abs=2)
    assert ys.min() == pytest.approx(40, abs=2) and ys.max() == pytest.approx(160, abs=2)


@pytest.mark.parametrize(
    ("wh", "k"), [((380, 210), 4), ((1000, 900), 1), ((900, 799), 2), ((200_000, 100), 2)]
)
def test_draw_scale_reaches_the_shorter_side_within_the_size_limit(wh: tuple[int, int], k: int) -> None:
    assert draw_scale(*wh) == k
    assert min(wh) * k >= DRAW_MIN_SIDE or wh[0] * wh[1] * (k + 1) ** 2 > DRAW_MAX_MEGAPIXELS * 1e6
