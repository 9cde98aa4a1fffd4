"""Contract of the image store: one Zarr v3 group per frame holding the pyramid.

`image.zarr/0, 1, 2 ...` are pyramid levels (level k = level k-1 reduced by a 2x2 box mean, see
tasks/pyramid.py), each an (H, W, 3) uint8 array chunked about 1024 x 1024 x 3, dimension names
("y", "x", "c"). Group attributes: OME-NGFF 0.4-style `multiscales` (axes, per-level scale and
translation mapping a level's pixel centres to full-resolution pixel centres), and `source`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

DIMENSION_NAMES = ("y", "x", "c")
DOWNSAMPLING = "2x2 box mean, round half up, odd edge replicated"


class SourceInfo(BaseModel):
    """Where the pixels came from. `width`/`height` are those of level 0 (after EXIF orientation)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    bytes: int
    sha256: str
    width: int
    height: int
    loader: str
    bands: int
    format: str
    interpretation: str
    exif_orientation: int
    converted: list[str]


def multiscales_attrs(name: str, shapes: list[tuple[int, int]]) -> dict[str, Any]:
    """OME-NGFF-style multiscales metadata for levels of (height, width) `shapes`, level 0 first.

    Pixel (i, j) of level k covers full-resolution pixels [i 2^k, (i+1) 2^k) x [j 2^k, (j+1) 2^k), so its
    centre is at i 2^k + (2^k - 1) / 2: scale 2^k, translation (2^k - 1) / 2 on y and x.
    """
    datasets = []
    for k, _ in enumerate(shapes):
        s = float(1 << k)
        datasets.append(
            {
                "path": str(k),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [s, s, 1.0]},
                    {"type": "translation", "translation": [(s - 1) / 2, (s - 1) / 2, 0.0]},
                ],
            }
        )
    return {
        "multiscales": [
            {
                "version": "0.4",
                "name": name,
                "axes": [
                    {"name": "y", "type": "space", "unit": "pixel"},
                    {"name": "x", "type": "space", "unit": "pixel"},
                    {"name": "c", "type": "channel"},
                ],
                "datasets": datasets,
                "type": DOWNSAMPLING,
            }
        ]
    }
