"""Pyramid geometry and the 2x2 box downsampling that defines every level above 0.

Pure functions of sizes and arrays: no I/O. Level k of a frame is level k-1 reduced by a 2x2 box mean,
so one pixel of level k covers the 2^k x 2^k block of full-resolution pixels starting at
(i * 2^k, j * 2^k). Odd sizes round up: the last row/column of an odd level is averaged with a copy of
itself (edge replication), so no full-resolution pixel is ever dropped and every level's footprint is
the whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Level:
    """One pyramid level. `index` k; `height`, `width` in pixels of that level; `scale` = 2^k."""

    index: int
    height: int
    width: int

    @property
    def scale(self) -> int:
        return 1 << self.index


def pyramid_levels(height: int, width: int, min_side: int = 1024) -> list[Level]:
    """Levels 0, 1, ... of a frame of `height` x `width` pixels.

    Level k has size ceil(height / 2^k) x ceil(width / 2^k). Levels are added until the shorter side of
    the last one is below `min_side` (that last level is kept: it is the overview). A frame whose shorter
    side is already below `min_side` has only level 0.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if min_side < 2:
        raise ValueError(f"min_side must be >= 2, got {min_side}")
    levels = [Level(0, height, width)]
    while min(levels[-1].height, levels[-1].width) >= min_side:
        prev = levels[-1]
        levels.append(Level(prev.index + 1, -(-prev.height // 2), -(-prev.width // 2)))
    return levels


def strip_starts(height: int, strip: int) -> list[tuple[int, int]]:
    """Row ranges [(y0, y1), ...] that cut `height` rows into strips of `strip` rows (last one shorter)."""
    if strip < 1:
        raise ValueError(f"strip height must be >= 1, got {strip}")
    return [(y, min(y + strip, height)) for y in range(0, height, strip)]


def downsample2x(block: np.ndarray) -> np.ndarray:
    """2x2 box mean of an image block, rounded half up, odd edges replicated.

    block: (H, W, C) uint8, C in {1, 3, 4}. Returns (ceil(H/2), ceil(W/2), C) uint8 where
    out[i, j] = (b[2i, 2j] + b[2i+1, 2j] + b[2i, 2j+1] + b[2i+1, 2j+1] + 2) // 4
    with b the block padded by one replicated row/column where H or W is odd.
    """
    if block.ndim != 3 or block.dtype != np.uint8 or block.shape[2] not in (1, 3, 4):
        # OpenCV's exact fast path covers 1, 3 and 4 channels; 2 goes through a float path.
        raise ValueError(f"expected (H, W, C) uint8 with C in 1, 3, 4; got {block.shape} {block.dtype}")
    h, w, c = block.shape
    if h % 2 or w % 2:
        block = np.pad(block, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        h, w = block.shape[:2]
    # OpenCV's INTER_AREA at exactly half size is this rounded 2x2 mean, SIMD-vectorised (~15x numpy).
    out = cv2.resize(block, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return out.reshape(h // 2, w // 2, c)
