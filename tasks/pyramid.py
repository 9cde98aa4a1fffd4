"""Pyramid geometry and the 2x2 box downsampling that defines every level above 0.

Pure functions of sizes and arrays: no I/O. Level k of a frame is level k-1 reduced by a 2x2 box mean,
so one pixel of level k covers the 2^k x 2^k block of full-resolution pixels starting at
(i * 2^k, j * 2^k). Odd sizes round up: the last row/column of an odd level is averaged with a copy of
itself (edge replication), so no full-resolution pixel is ever dropped and every level's footprint is
the whole frame.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

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


def downsample2x(block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """2x2 box mean of an image block, rounded half up, odd edges replicated.

    block: (H, W, C) uint8, C in {1, 3, 4}. Returns (ceil(H/2), ceil(W/2), C) uint8 where
    out[i, j] = (b[2i, 2j] + b[2i+1, 2j] + b[2i, 2j+1] + b[2i+1, 2j+1] + 2) // 4
    with b the block padded by one replicated row/column where H or W is odd. `out`, if given, must
    have that shape and receives the result (no allocation when it is C-contiguous).
    """
    if block.ndim != 3 or block.dtype != np.uint8 or block.shape[2] not in (1, 3, 4):
        # OpenCV's exact fast path covers 1, 3 and 4 channels; 2 goes through a float path.
        raise ValueError(f"expected (H, W, C) uint8 with C in 1, 3, 4; got {block.shape} {block.dtype}")
    h, w, c = block.shape
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    if out is None:
        out = np.empty((h2, w2, c), np.uint8)
    elif out.shape != (h2, w2, c) or out.dtype != np.uint8:
        raise ValueError(f"out must be ({h2}, {w2}, {c}) uint8, got {out.shape} {out.dtype}")
    he, we = h - h % 2, w - w % 2
    if he and we:
        # OpenCV's INTER_AREA at exactly half size is this rounded 2x2 mean, SIMD-vectorised (~15x numpy).
        dst = out[: he // 2, : we // 2]
        size = (we // 2, he // 2)
        if dst.flags.c_contiguous:
            cv2.resize(block[:he, :we], size, dst=dst if c > 1 else dst[..., 0], interpolation=cv2.INTER_AREA)
        else:
            dst[...] = cv2.resize(block[:he, :we], size, interpolation=cv2.INTER_AREA).reshape(dst.shape)
    # A replicated edge pixel pairs with itself: (2a + 2b + 2) // 4 == (a + b + 1) // 2.
    if w % 2 and he:
        out[: he // 2, w2 - 1] = (block[0:he:2, w - 1].astype(np.uint16) + block[1:he:2, w - 1] + 1) >> 1
    if h % 2 and we:
        out[h2 - 1, : we // 2] = (block[h - 1, 0:we:2].astype(np.uint16) + block[h - 1, 1:we:2] + 1) >> 1
    if h % 2 and w % 2:
        out[h2 - 1, w2 - 1] = block[h - 1, w - 1]
    return out


class ChunkCache:
    """A read-only view of a chunked (H, W, C) array (a Zarr level) that decodes each chunk once.

    Overlapping tiles and crops touch the same chunks again and again; through this view every chunk
    is read and decompressed once and kept (least recently used first out, at most `max_chunks`).
    Index with [y0:y1, x0:x1] (steps of 1); returns a new (y1-y0, x1-x0, C) array.
    """

    def __init__(self, array: Any, max_chunks: int = 64) -> None:
        self.array, self.max_chunks = array, max_chunks
        self.shape: tuple[int, ...] = tuple(array.shape)
        self.dtype = array.dtype
        self.ch, self.cw = array.chunks[0], array.chunks[1]
        self._chunks: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self.reads = 0

    def _chunk(self, i: int, j: int) -> np.ndarray:
        key = (i, j)
        if key in self._chunks:
            self._chunks.move_to_end(key)
            return self._chunks[key]
        block = np.asarray(self.array[i * self.ch : (i + 1) * self.ch, j * self.cw : (j + 1) * self.cw])
        self.reads += 1
        self._chunks[key] = block
        if len(self._chunks) > self.max_chunks:
            self._chunks.popitem(last=False)
        return block

    def __getitem__(self, index: tuple[slice, slice]) -> np.ndarray:
        ys, xs = index
        y0, y1, _ = ys.indices(self.shape[0])
        x0, x1, _ = xs.indices(self.shape[1])
        out = np.empty((max(y1 - y0, 0), max(x1 - x0, 0), *self.shape[2:]), self.dtype)
        for i in range(y0 // self.ch, -(-y1 // self.ch)):
            for j in range(x0 // self.cw, -(-x1 // self.cw)):
                block = self._chunk(i, j)
                by0, bx0 = i * self.ch, j * self.cw
                sy0, sy1 = max(y0, by0), min(y1, by0 + self.ch)
                sx0, sx1 = max(x0, bx0), min(x1, bx0 + self.cw)
                out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = block[
                    sy0 - by0 : sy1 - by0, sx0 - bx0 : sx1 - bx0
                ]
        return out
