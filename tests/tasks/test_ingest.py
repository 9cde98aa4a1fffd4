from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import pyvips

from schemas.layout import STORE_NAME
from schemas.scene import IngestConfig
from tasks import InputError
from tasks.ingest import ingest_image, open_levels, read_strips, to_rgb8
from tests.conftest import SUFFIX, odd_crop, png_header_only, reference_pyramid, write_kind

SMALL = IngestConfig(chunk=128, min_side=100)  # 1001 x 597 -> levels 597, 299, 150, 75: 4 levels, 5 strips


def _full_decode(path: Path) -> np.ndarray:
    img, _ = to_rgb8(pyvips.Image.new_from_file(str(path)).autorot())
    return img.numpy()


@pytest.mark.parametrize("kind", sorted(SUFFIX))
def test_every_level_is_pixel_exact(kind: str, photo: pyvips.Image, tmp_path: Path) -> None:
    src = write_kind(odd_crop(photo), kind, tmp_path / f"in{SUFFIX[kind]}")
    info = ingest_image(src, tmp_path / STORE_NAME, SMALL, "f")
    levels = open_levels(tmp_path / STORE_NAME)
    full = _full_decode(src)
    assert full.shape == (597, 1001, 3) and (info.height, info.width) == (597, 1001)
    expected = reference_pyramid(full, 4)
    assert [lv.shape for lv in levels] == [(597, 1001, 3), (299, 501, 3), (150, 251, 3), (75, 126, 3)]
    for got, want in zip(levels, expected, strict=True):
        assert got.dtype == np.uint8 and got.chunks == (128, 128, 3)
        np.testing.assert_array_equal(got[:], want)
    assert info.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()


def test_store_attributes_follow_the_contract(photo: pyvips.Image, tmp_path: Path) -> None:
    src = write_kind(odd_crop(photo), "jpeg", tmp_path / "in.jpg")
    ingest_image(src, tmp_path / STORE_NAME, SMALL, "frame-a")
    import zarr

    attrs = zarr.open_group(str(tmp_path / STORE_NAME), mode="r").attrs.asdict()
    ms = attrs["multiscales"][0]
    assert ms["name"] == "frame-a" and [a["name"] for a in ms["axes"]] == ["y", "x", "c"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]]
    shifts = [d["coordinateTransformations"][1]["translation"] for d in ms["datasets"]]
    assert scales == [[1, 1, 1], [2, 2, 1], [4, 4, 1], [8, 8, 1]]
    # centre of level-k pixel 0 is the centre of the 2^k block of full-resolution pixels it averages
    assert shifts == [[0, 0, 0], [0.5, 0.5, 0], [1.5, 1.5, 0], [3.5, 3.5, 0]]
    src_attrs = attrs["source"]
    assert (
        src_attrs["width"] == 1001 and src_attrs["height"] == 597 and src_attrs["path"] == str(src.resolve())
    )
    assert src_attrs["bytes"] == src.stat().st_size and src_attrs["loader"].startswith("jpegload")


def test_conversions_to_rgb8(tmp_path: Path) -> None:
    gray16 = np.array([[0, 255, 256, 65535, 32896]], np.uint16)
    img, done = to_rgb8(pyvips.Image.new_from_array(gray16).copy(interpretation="grey16"))
    out = img.numpy()
    assert out.dtype == np.uint8 and out.shape == (1, 5, 3) and done
    assert out[0, :, 0].tolist() == [0, 0, 1, 255, 128]  # high byte kept
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[..., :3] = [200, 100, 50]
    rgba[0, :, 3] = [0, 255, 128]
    out = to_rgb8(pyvips.Image.new_from_array(rgba).copy(interpretation="srgb"))[0].numpy()
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [200, 100, 50]
    assert abs(int(out[0, 2, 0]) - 100) <= 1  # composited over black
    rgb = pyvips.Image.new_from_array(np.full((2, 2, 3), 7, np.uint8)).copy(interpretation="srgb")
    assert to_rgb8(rgb)[1] == []


def test_exif_orientation_is_honoured_or_refused(photo: pyvips.Image, tmp_path: Path) -> None:
    img = odd_crop(photo).copy()
    img.set_type(pyvips.GValue.gint_type, "orientation", 6)  # rotate 90 clockwise to display
    src = tmp_path / "rot.jpg"
    img.jpegsave(str(src), Q=90)
    info = ingest_image(src, tmp_path / STORE_NAME, SMALL)
    level0 = open_levels(tmp_path / STORE_NAME)[0][:]
    assert (info.height, info.width, info.exif_orientation) == (1001, 597, 6)
    stored = pyvips.Image.new_from_file(str(src)).numpy()  # as stored, not rotated
    np.testing.assert_array_equal(level0, np.rot90(stored, k=-1))
    with pytest.raises(InputError, match="EXIF orientation 6"):
        ingest_image(src, tmp_path / "other.zarr", IngestConfig(exif_orientation="refuse"))


def test_strips_are_read_in_order_for_both_access_modes(photo: pyvips.Image, tmp_path: Path) -> None:
    src = write_kind(odd_crop(photo), "tiff-tiled", tmp_path / "t.tif")
    ref = pyvips.Image.new_from_file(str(src)).numpy()
    for random_access, threads in [(False, 1), (True, 3)]:
        img = pyvips.Image.new_from_file(str(src), access="random" if random_access else "sequential")
        got = [(y, s.copy()) for y, s in read_strips(img, 100, random_access, threads)]
        assert [y for y, _ in got] == list(range(0, 597, 100))
        np.testing.assert_array_equal(np.concatenate([s for _, s in got]), ref)


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated_jpeg(photo: pyvips.Image, path: Path) -> Path:
    full = write_kind(odd_crop(photo), "jpeg", path.with_name("full.jpg")).read_bytes()
    path.write_bytes(full[: len(full) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, photo: p / "missing.jpg", "not found"),
        (lambda p, photo: _written(p / "empty.jpg", b""), "empty"),
        (lambda p, photo: _written(p / "text.jpg", b"hello, not a picture"), "not an image"),
        (lambda p, photo: _truncated_jpeg(photo, p / "cut.jpg"), "corrupt or truncated"),
        (lambda p, photo: png_header_only(p / "huge.png", 70000, 70000), "70000x70000"),
    ],
    ids=["missing", "zero-byte", "not-an-image", "truncated-jpeg", "huge-header"],
)
def test_bad_inputs_raise_one_line_input_errors(
    make, message: str, photo: pyvips.Image, tmp_path: Path
) -> None:
    src = make(tmp_path, photo)
    with pytest.raises(InputError, match=message) as err:
        ingest_image(src, tmp_path / STORE_NAME, SMALL)
    assert "\n" not in str(err.value) and str(src) in str(err.value)


def test_huge_header_within_limits_still_fails_cleanly(tmp_path: Path) -> None:
    src = png_header_only(tmp_path / "huge.png", 70000, 70000)
    with pytest.raises(InputError, match=r"corrupt or truncated|cannot read"):
        ingest_image(src, tmp_path / STORE_NAME, IngestConfig(max_megapixels=10000))
