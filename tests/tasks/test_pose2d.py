"""Top-down crops: the affine maps the box to the crop centre and back exactly."""

from __future__ import annotations

import numpy as np

from tasks.pose2d import crop, crop_affine, to_image


def test_crop_affine_centres_the_box_and_keeps_aspect() -> None:
    box = np.array([100.0, 50.0, 140.0, 250.0])  # 40 x 200: the height sets the square
    a = crop_affine(box, 192, scale=1.25)
    centre = a @ [120.0, 150.0, 1.0]
    np.testing.assert_allclose(centre, [96, 96])
    top = a @ [120.0, 50.0, 1.0]
    np.testing.assert_allclose(top[1], 96 - 96 / 1.25)  # the box's height spans 1/1.25 of the crop
    assert a[0, 0] == a[1, 1] > 0


def test_keypoints_map_back_to_image_pixels() -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((300, 400, 3), np.uint8)
    image[200, 310] = 255  # one bright pixel inside the box
    box = np.array([280.0, 150.0, 340.0, 260.0])
    c, a = crop(image, box, 192)
    y, x = np.unravel_index(c[..., 0].argmax(), c.shape[:2])
    back = to_image(np.array([[x, y, 1.0]]), a)[0]
    # Upsampled by 192 / (1.25 * 110) = 1.4: the brightest crop pixel lies within a pixel of the source.
    assert abs(back[0] - 310) <= 1.0 and abs(back[1] - 200) <= 1.0
    kp = np.concatenate([rng.uniform(0, 192, (17, 2)), rng.uniform(0, 1, (17, 1))], 1)
    again = (a[:, :2] @ to_image(kp, a)[:, :2].T).T + a[:, 2]
    np.testing.assert_allclose(again, kp[:, :2], atol=1e-9)
    np.testing.assert_array_equal(to_image(kp, a)[:, 2], kp[:, 2])  # confidences untouched


def test_outside_the_image_is_black() -> None:
    image = np.full((100, 100, 3), 200, np.uint8)
    c, _ = crop(image, np.array([-50.0, 0.0, 10.0, 100.0]), 64)
    # The crop spans x in [-82.5, 42.5): its left eighth lies left of the image, x = 35 inside it.
    assert c[:, :8].max() == 0 and c[32, 60].min() == 200
