"""Pictures: the ground frame, and people placed where they stand in the bird's-eye and side views."""

from __future__ import annotations

import numpy as np

from tasks.draw import birdseye, ground_axes, side_view


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


def test_birdseye_puts_people_where_they_stand() -> None:
    plane = np.array([0.0, -1.0, 0.0, 1.5])
    joints = _people([(-5.0, 10.0), (5.0, 30.0)])
    img = birdseye(joints, plane, focal=1000.0, image_wh=(2000, 1000), size=512)
    assert img.shape == (512, 512, 3)
    saturated = (img.max(2).astype(int) - img.min(2)) > 120  # the coloured dots, not the grey grid
    ys, xs = np.nonzero(saturated)
    left = xs < 256
    # the near person (x -5 m, 10 m ahead) is left and lower than the far one (x +5 m, 30 m ahead)
    assert left.any() and (~left).any()
    assert ys[left].mean() > ys[~left].mean()
    # near is blue (turbo map start), far is red
    near, far = img[ys[left][0], xs[left][0]], img[ys[~left][0], xs[~left][0]]
    assert near[2] > near[0] and far[0] > far[2]


def test_side_view_draws_heights_above_the_ground() -> None:
    plane = np.array([0.0, -1.0, 0.0, 1.5])
    joints = _people([(0.0, 10.0), (0.0, 20.0)])
    joints[1, :, 1] -= 1.0  # the second person floats 1 m above the ground
    img = side_view(joints, plane, width=400, height=200)
    coloured = (img.max(2).astype(int) - img.min(2)) > 120
    ys, xs = np.nonzero(coloured)
    first, second = xs < xs.mean(), xs >= xs.mean()
    assert ys[second].max() < ys[first].max() - 5  # its feet are drawn higher
