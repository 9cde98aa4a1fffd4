"""Ingest: one image file -> a Zarr v3 pyramid (schemas/image_store.py), in memory bounded by its width.

The image is read in strips of `chunk` rows, top to bottom. JPEG, PNG and WebP are streamed
sequentially (random access would make libvips decode the whole file to a temporary file first);
TIFF, which libtiff reads by region, is read several strips at a time in parallel. Each strip is
written to level 0 as one row of chunks and reduced into the level above it; each level writes a row
of chunks as soon as it has one. Peak memory is a few strips per level: O(width * chunk), whatever the
height.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyvips
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from schemas.image_store import DIMENSION_NAMES, SourceInfo, multiscales_attrs
from schemas.scene import IngestConfig
from tasks import InputError
from tasks.files import file_sha256
from tasks.pyramid import Level, downsample2x, pyramid_levels, strip_starts

# Loaders that read any region without decoding everything above it.
_RANDOM_ACCESS_LOADERS = ("tiffload",)
_KNOWN_FORMATS = "JPEG, PNG, TIFF, WebP, HEIF"


def _vips_message(err: pyvips.Error) -> str:
    """libvips errors span several lines; keep the most specific one."""
    lines = [ln.strip() for ln in f"{err.message} {err.detail or ''}".splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown libvips error"


def to_rgb8(img: pyvips.Image) -> tuple[pyvips.Image, list[str]]:
    """Any libvips image -> 3-band sRGB uint8, and the list of conversions applied.

    Alpha is composited over black; grey becomes three equal bands; 16-bit becomes 8-bit by keeping
    the high byte (v >> 8); CMYK, LAB and other spaces go through libvips' colourspace conversion;
    other numeric formats are clipped to 0-255.
    """
    done: list[str] = []
    if img.hasalpha():
        img = img.flatten(background=[0])
        done.append("alpha composited over black")
    if img.interpretation != "srgb" or img.bands != 3 or img.format != "uchar":
        src = f"{img.interpretation}/{img.bands} band(s)/{img.format}"
        if img.bands in (1, 2) and img.interpretation not in ("b-w", "grey16"):
            img = img.copy(interpretation="grey16" if img.format == "ushort" else "b-w")
        elif img.bands == 3 and img.interpretation not in ("srgb", "rgb16", "lab", "labs", "xyz", "scrgb"):
            img = img.copy(interpretation="rgb16" if img.format == "ushort" else "srgb")
        img = img.colourspace("srgb")
        if img.format != "uchar":
            img = img.cast("uchar")
        if img.bands > 3:
            img = img.extract_band(0, n=3)
        done.append(f"{src} -> srgb/3/uchar")
    return img, done


def open_image(path: Path, cfg: IngestConfig) -> tuple[pyvips.Image, dict[str, object], bool]:
    """Open `path` for reading as RGB uint8.

    Returns (image, source fields for SourceInfo, random_access). Raises InputError, one line, for a
    missing, empty, unreadable, oversized or (with exif_orientation: refuse) rotated image.
    """
    if not path.is_file():
        raise InputError(f"input image not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"input image is empty (0 bytes): {path}")
    try:
        # Opening reads the header only; pixels are decoded when strips are read.
        img = pyvips.Image.new_from_file(str(path), access="sequential", fail_on="error")
    except pyvips.Error as e:
        msg = _vips_message(e)
        if "not a known" in msg or "is not a known file format" in msg:
            raise InputError(f"not an image libvips can read ({_KNOWN_FORMATS}): {path}") from e
        raise InputError(f"cannot read image header of {path}: {msg}") from e
    loader = str(img.get("vips-loader"))
    random_access = loader in _RANDOM_ACCESS_LOADERS
    if random_access:
        img = pyvips.Image.new_from_file(str(path), access="random", fail_on="error")
    megapixels = img.width * img.height / 1e6
    if megapixels > cfg.max_megapixels:
        raise InputError(
            f"image header of {path} says {img.width}x{img.height} ({megapixels:.0f} MP), above "
            f"ingest.max_megapixels={cfg.max_megapixels:g}; raise it if the image is genuine"
        )
    orientation = int(img.get("orientation")) if img.get_typeof("orientation") else 1
    if orientation not in range(1, 9):
        orientation = 1
    raw = {"bands": img.bands, "format": str(img.format), "interpretation": str(img.interpretation)}
    if orientation != 1:
        if cfg.exif_orientation == "refuse":
            raise InputError(
                f"{path} has EXIF orientation {orientation}; set ingest.exif_orientation: honour "
                "or rotate the file"
            )
        # Rotating needs random access; libvips then decodes to a disk-backed temporary image,
        # so memory stays bounded, at the cost of a second pass.
        img = pyvips.Image.new_from_file(str(path), access="random", fail_on="error").autorot()
        random_access = True
    img, converted = to_rgb8(img)
    fields: dict[str, object] = {
        "path": str(path.resolve()),
        "bytes": size,
        "width": img.width,
        "height": img.height,
        "loader": loader,
        "exif_orientation": orientation,
        "converted": converted,
        **raw,
    }
    return img, fields, random_access


def read_strips(
    img: pyvips.Image, rows: int, random_access: bool, threads: int = 2
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (y0, (h, W, 3) uint8) strips of `rows` rows, top to bottom.

    Sequential images are decoded in order on the calling thread, into two buffers used in turn: a
    yielded strip stays valid until the next-but-one is requested (fresh 100 MB allocations per strip
    cost more kernel time than the decode itself on a 32k-wide frame). Random-access images are read
    `threads` strips at a time, at most `threads` ahead of the consumer, each strip its own array.
    """
    ranges = strip_starts(img.height, rows)
    if not random_access or threads <= 1:
        buffers = [np.empty((min(rows, img.height), img.width, img.bands), np.uint8) for _ in range(2)]
        for i, (y0, y1) in enumerate(ranges):
            strip = buffers[i % 2][: y1 - y0]
            target = pyvips.Image.new_from_memory(strip.data, img.width, y1 - y0, img.bands, "uchar")
            img.crop(0, y0, img.width, y1 - y0).write(target)
            yield y0, strip
        return

    def read(y0: int, y1: int) -> np.ndarray:
        return img.crop(0, y0, img.width, y1 - y0).numpy()

    with ThreadPoolExecutor(threads, thread_name_prefix="ingest-read") as pool:
        window: deque[tuple[int, Future[np.ndarray]]] = deque()
        todo = iter(ranges)
        for y0, y1 in todo:
            window.append((y0, pool.submit(read, y0, y1)))
            if len(window) >= threads:
                break
        while window:
            y0, fut = window.popleft()
            strip = fut.result()
            nxt = next(todo, None)
            if nxt is not None:
                window.append((nxt[0], pool.submit(read, *nxt)))
            yield y0, strip


def _codecs(cfg: IngestConfig) -> list[object] | None:
    if cfg.compressor == "zstd":
        return [ZstdCodec(level=cfg.compression_level)]
    if cfg.compressor == "lz4":
        return [BloscCodec(cname="lz4", clevel=cfg.compression_level, shuffle="noshuffle")]
    return None


class _PyramidSink:
    """Takes level-0 strips top to bottom and writes every level a row of chunks at a time.

    Level k >= 1 accumulates in one preallocated (chunk, W_k, 3) buffer that level k-1 downsamples
    straight into; a full buffer is written as one row of chunks and reduced into level k+1.
    """

    def __init__(self, arrays: list[zarr.Array], levels: list[Level], chunk: int) -> None:
        self.arrays, self.levels, self.chunk = arrays, levels, chunk
        self.buffers = [np.empty((min(chunk, lv.height), lv.width, 3), np.uint8) for lv in levels]
        self.filled = [0 for _ in levels]  # rows buffered at each level
        self.written = [0 for _ in levels]  # rows written to each level's array

    def push(self, strip: np.ndarray) -> None:
        """Level-0 rows [written[0], written[0] + len(strip)); a strip of `chunk` rows but the last."""
        self._write(0, strip)

    def finish(self) -> None:
        for k in range(1, len(self.levels)):
            if self.filled[k]:
                self._write(k, self.buffers[k][: self.filled[k]])
        for k, lv in enumerate(self.levels):
            if self.written[k] != lv.height:
                raise RuntimeError(f"level {k}: wrote {self.written[k]} of {lv.height} rows")

    def _write(self, k: int, rows: np.ndarray) -> None:
        y0 = self.written[k]
        self.arrays[k][y0 : y0 + rows.shape[0]] = rows
        self.written[k] = y0 + rows.shape[0]
        self.filled[k] = 0
        if k + 1 < len(self.levels):
            up, r = self.buffers[k + 1], self.filled[k + 1]
            n = (rows.shape[0] + 1) // 2
            downsample2x(rows, out=up[r : r + n])
            self.filled[k + 1] = r + n
            if self.filled[k + 1] == up.shape[0]:
                self._write(k + 1, up)


def ingest_image(src: Path, dst: Path, cfg: IngestConfig, name: str | None = None) -> SourceInfo:
    """Write the pyramid of image `src` as a new Zarr v3 group at `dst` (which must not exist).

    The caller makes this atomic (dst is a temporary path renamed when complete). Raises InputError
    for bad input, including data found corrupt or truncated half-way through the file.
    """
    img, fields, random_access = open_image(src, cfg)
    levels = pyramid_levels(img.height, img.width, cfg.min_side)
    group = zarr.open_group(store=str(dst), mode="w-", zarr_format=3)
    arrays = [
        group.create_array(
            str(lv.index),
            shape=(lv.height, lv.width, 3),
            chunks=(cfg.chunk, cfg.chunk, 3),
            dtype="uint8",
            fill_value=0,
            compressors=_codecs(cfg),
            dimension_names=DIMENSION_NAMES,
            # Photographs have no all-zero chunks; zarr's per-chunk emptiness test cost ~5x the write.
            config={"write_empty_chunks": True},
        )
        for lv in levels
    ]
    sink = _PyramidSink(arrays, levels, cfg.chunk)
    rows_read = 0
    # One writer thread overlaps encode/write/downsample with decoding; waiting on the previous write
    # before queueing the next keeps at most two strips in flight.
    with (
        ThreadPoolExecutor(1, thread_name_prefix="ingest-sha256") as hasher,
        ThreadPoolExecutor(1, thread_name_prefix="ingest-write") as writer,
    ):
        sha = hasher.submit(file_sha256, src)
        previous: Future[None] | None = None
        try:
            for y0, strip in read_strips(img, cfg.chunk, random_access):
                rows_read = y0 + strip.shape[0]
                if previous is not None:
                    previous.result()
                previous = writer.submit(sink.push, strip)
            if previous is not None:
                previous.result()
        except pyvips.Error as e:
            raise InputError(
                f"image data of {src} is corrupt or truncated after row {rows_read} of {img.height}: "
                f"{_vips_message(e)}"
            ) from e
        sink.finish()
        info = SourceInfo(sha256=sha.result(), **fields)  # type: ignore[arg-type]
    group.attrs.update(
        {
            **multiscales_attrs(name or src.stem, [(lv.height, lv.width) for lv in levels]),
            "source": info.model_dump(),
        }
    )
    return info


def open_levels(store: Path) -> list[zarr.Array]:
    """The pyramid levels of an image store, level 0 first (read-only)."""
    group = zarr.open_group(store=str(store), mode="r")
    n = len(group.attrs["multiscales"][0]["datasets"])
    return [group[str(k)] for k in range(n)]  # type: ignore[misc]
