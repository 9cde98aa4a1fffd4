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


def test_large_people_are_cropped_from_a_coarser_level_with_the_same_pixels() -> None:
    from tasks.pose2d import crop_from_levels, crop_level
    from tasks.pyramid import downsample2x

    rng = np.random.default_rng(1)
    # Smooth content, so every level holds the same picture at its own resolution.
    small = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    import cv2

    image = cv2.resize(small, (1200, 800), interpolation=cv2.INTER_CUBIC)
    levels = [image]
    for _ in range(3):
        levels.append(downsample2x(levels[-1]))
    box = np.array([300.0, 50.0, 700.0, 780.0])  # 730 px tall: a 912 px crop side
    assert crop_level(box, 192, 1.25, len(levels)) == 2  # 912 / 4 = 228 >= 192 > 912 / 8
    assert crop_level(np.array([0, 0, 50, 100.0]), 192, 1.25, len(levels)) == 0
    c_levels, a, k = crop_from_levels(levels, box, 192)
    c_full, a_full = crop(image, box, 192)
    assert k == 2
    np.testing.assert_array_equal(a, a_full)
    diff = np.abs(c_levels.astype(float) - c_full.astype(float))
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 12
    # A box partly outside the frame: the outside is black in both.
    edge = np.array([-100.0, 100.0, 200.0, 500.0])
    c1, _, _ = crop_from_levels(levels, edge, 192)
    c2, _ = crop(image, edge, 192)
    assert c1[:, :20].max() == 0 and c2[:, :20].max() == 0
    assert np.abs(c1.astype(float) - c2.astype(float)).mean() < 2.0


def test_other_peoples_boxes_are_painted_out_of_a_crop_but_not_the_persons_own() -> None:
    """A white frame, the target's box in the middle, a neighbour's box overlapping its right half
    and reaching beyond it: the crop is grey where the neighbour's box lies outside the target's box
    and white elsewhere, including where the two boxes overlap; a far box is not in the crop."""
    from tasks.pose2d import others_near, paint_out_others

    image = np.full((400, 400, 3), 255, np.uint8)
    own = np.array([150.0, 100.0, 250.0, 300.0])
    boxes = np.array([own, [200.0, 150.0, 320.0, 350.0], [0.0, 0.0, 20.0, 20.0]])
    others = others_near(boxes, own)
    assert others.tolist() == [boxes[1].tolist()]  # itself and the far box left out
    c, a = crop(image, own, (192, 192))
    out = paint_out_others(c, a, own, others)

    def at(x: float, y: float) -> int:  # the crop pixel of image point (x, y)
        u, v = a @ np.array([x, y, 1.0])
        return int(out[int(v), int(u), 0])

    assert at(275, 250) == 128  # the neighbour, outside the target's box
    assert at(225, 250) == 255 and at(160, 110) == 255  # inside the target's box: untouched
    assert at(140, 250) == 255  # outside both
    assert (c == 255).all()  # the crop itself is not changed


def test_estimate_paints_out_the_frames_other_boxes_only_when_given_them() -> None:
    from tasks.pose2d import estimate

    seen: list[np.ndarray] = []

    class Recorder:
        size = (192, 192)

        def __call__(self, crops: np.ndarray) -> np.ndarray:
            seen.append(crops.copy())
            return np.zeros((len(crops), 17, 3), np.float32)

    image = np.full((400, 400, 3), 255, np.uint8)
    boxes = np.array([[150.0, 100.0, 250.0, 300.0], [200.0, 150.0, 320.0, 350.0]])
    estimate([image], boxes, Recorder())
    assert all((c != 128).all() for c in seen)
    seen.clear()
    estimate([image], boxes[:1], Recorder(), context=boxes)  # a batch of one, the frame's boxes as context
    (c,) = seen
    assert (c == 128).any() and (c == 255).mean() > 0.5
