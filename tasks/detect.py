"""Person detection over a gigapixel frame: a multi-scale tile plan, per-tile detection, and the merge.

A frame holds people from ~20 px to ~7000 px tall; a detector sees a fixed input (416 x 416 for
YOLOX-Nano) and finds people well only within a band of sizes. So the frame is cut into input-sized
tiles at several pyramid levels (level k = downsampled 2^k), and level k is responsible for people
whose height at that level lies in [person_px / 2, person_px) input pixels, i.e. full-resolution heights
[person_px 2^(k-1), person_px 2^k). These bands tile the whole range: the bottom level also takes
everyone smaller and the top level everyone larger. The bottom level is 0 unless people smaller than
MIN_INPUT_PX are expected (`min_person`): then the frame is also tiled enlarged (level -1 = 2x, ...).
Tiles of a level overlap by `margin * person_px` pixels, so every person that level is responsible
for lies whole inside at least one tile.

Merge (all in full-resolution pixels):
1. a box touching an interior edge of its tile is "cut"; it is dropped when an uncut box of the same
   level covers most of it (the neighbour tile saw the person whole);
2. a box whose height is outside its level's band (with the margin) is dropped, unless no other level
   can see it (tiny people at level 0, huge ones at the top level);
3. NMS across tiles and levels, boxes of the level responsible for their size first, then by score;
4. a box lying mostly inside one twice as tall from a coarser level is dropped: finer levels see
   heads, torsos and legs of people found whole at a coarser level (a small person wholly inside a
   near person's box is lost with them; in crowds they are rare next to the part boxes).

Ground-plane pruning (coarse to fine): people standing on one ground plane have a pixel height that is
close to a linear function of where their feet are, h ~ a y + b x + c (exact for a pinhole camera, a
plane and people of one height; the horizon is the line h = 0). The coarse levels (few tiles) run
first; a robust fit of that function to the people they find predicts, for every fine-level tile, the
heights of the people standing in it. A fine tile is skipped when no person whose height is within a
factor `tolerance` of the prediction falls in the tile level's band, e.g. level-0 tiles where everyone
is predicted a few hundred pixels tall, and tiles above the horizon. People off the plane by more than
the tolerance (balconies, stands, people carried) can be lost there; `prune: off` keeps every tile.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from tasks.boxes import coverage, nms
from tasks.robust import MAD_TO_SIGMA

if TYPE_CHECKING:
    from schemas.scene import DetectConfig

# images: list of (H, W, 3) uint8 RGB -> per image (K, 5) x1, y1, x2, y2, score in its own pixels.
Detector = Callable[[list[np.ndarray]], list[np.ndarray]]
T = TypeVar("T")  # what detect_tiles' reader gives its detector

# Columns of the detection array: x1, y1, x2, y2 (full-res px), score, level, tile_id, cut (0/1).
DET_COLUMNS = ("x1", "y1", "x2", "y2", "score", "level", "tile_id", "cut")
CUT_TOLERANCE = 2.0  # level pixels: a box this close to an interior tile edge counts as cut
# Smallest person (input px) the detector is relied on to see: people below it at level 0 need an
# upsampled level (level -m: enlarged 2^m), planned when the scene says how small people get.
MIN_INPUT_PX = 32.0


@dataclass(frozen=True)
class Tile:
    """One detector input: pixels [y0, y1) x [x0, x1) of pyramid level `level` (level pixels).

    `interior` says which edges (left, top, right, bottom) lie inside the level's image (a box touching
    them may be a cut person); `band` is the full-resolution person heights this level is responsible for.
    """

    tile_id: int
    level: int
    x0: int
    y0: int
    x1: int
    y1: int
    interior: tuple[bool, bool, bool, bool]
    band: tuple[float, float]


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts covering [0, length) with tiles of `tile` overlapping by at least `overlap`."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    # Spread the tiles evenly so the overlap is at least `overlap` everywhere and the last one ends flush.
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def tile_plan(
    height: int,
    width: int,
    input_size: tuple[int, int] = (416, 416),
    person_px: float = 160.0,
    margin: float = 1.25,
    max_person: float | None = None,
    min_person: float | None = None,
) -> list[Tile]:
    """Tiles over every pyramid level needed for a (height, width) frame.

    input_size (h, w) detector input pixels; person_px: the tallest person (input pixels) a level is
    responsible for, where the detector still sees people well (YOLOX-Nano at 416: up to ~200 px);
    margin >= 1 widens the overlap to margin * person_px; max_person: tallest person to expect,
    full-res pixels (default: frame height); min_person: smallest person to expect, full-res pixels
    (default: no smaller than MIN_INPUT_PX, so level 0 sees everyone).
    The bottom level is the first at which min_person is at least MIN_INPUT_PX tall: negative levels
    are the frame enlarged 2^-k (each costs 4x the tiles of the level above it). The top level is the
    first whose band reaches `max_person` or whose image fits one tile.
    """
    hi = float(person_px)
    ih, iw = input_size
    if not hi > 0 or margin < 1:
        raise ValueError(f"need person_px > 0 and margin >= 1, got {person_px}, {margin}")
    if margin * hi >= min(ih, iw):
        raise ValueError(
            f"overlap margin * person_px = {margin * hi:.0f} px must be below the input size {input_size}"
        )
    tallest = float(max_person if max_person is not None else height)
    if min_person is not None and not min_person > 0:
        raise ValueError(f"min_person must be > 0, got {min_person}")
    bottom = 0 if min_person is None else min(0, math.floor(math.log2(min_person / MIN_INPUT_PX)))
    overlap = math.ceil(margin * hi)
    tiles: list[Tile] = []
    level = bottom
    while True:
        lh, lw = math.ceil(height / 2**level), math.ceil(width / 2**level)
        top = hi * 2**level >= tallest or (lh <= ih and lw <= iw)
        band = (0.0 if level == bottom else hi * 2 ** (level - 1), math.inf if top else hi * 2**level)
        ys, xs = _starts(lh, ih, overlap), _starts(lw, iw, overlap)
        for y0 in ys:
            for x0 in xs:
                y1, x1 = min(y0 + ih, lh), min(x0 + iw, lw)
                interior = (x0 > 0, y0 > 0, x1 < lw, y1 < lh)
                tiles.append(Tile(len(tiles), level, x0, y0, x1, y1, interior, band))
        if top:
            return tiles
        level += 1


def split_plan(tiles: list[Tile], coarse_from: int = 2) -> tuple[list[Tile], list[Tile]]:
    """(coarse, fine) tiles: coarse are levels >= coarse_from (the top level when the plan has fewer)."""
    if not tiles:
        return [], []
    start = min(coarse_from, max(t.level for t in tiles))
    return [t for t in tiles if t.level >= start], [t for t in tiles if t.level < start]


@dataclass(frozen=True)
class HeightPrior:
    """Predicted standing height h(x, y) = a y + b x + c (full-res px) of a person whose feet (box
    bottom centre) are at (x, y); actual heights lie within [h / tolerance, h * tolerance]."""

    a: float
    b: float
    c: float
    tolerance: float
    people: int

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.a * np.asarray(y) + self.b * np.asarray(x) + self.c


def fit_height_prior(
    boxes: np.ndarray,
    frame: tuple[int, int],
    min_people: int = 10,
    min_tolerance: float = 2.0,
    max_tolerance: float = 4.0,
) -> tuple[HeightPrior | None, str]:
    """Fit h = a y + b x + c to people's boxes (N, 4) x1, y1, x2, y2 (full-res px) in a frame of
    (height, width) px. Returns (prior, "") or (None, why not) when too few people are whole in the
    frame, heights do not grow towards the bottom, or they scatter too far for pruning to be safe.

    Boxes touching the frame border are left out (their people may be cut). The fit minimises the
    relative error (weights 1 / h) and drops outliers beyond 3 robust sigmas of log(h / fit) twice;
    the tolerance is the 98th percentile of |log(h / fit)| of the rest, widened by 1.25, at least
    `min_tolerance`.
    """
    fh, fw = frame
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    whole = (b[:, 0] > 1) & (b[:, 1] > 1) & (b[:, 2] < fw - 1) & (b[:, 3] < fh - 1) & (b[:, 3] > b[:, 1])
    b = b[whole]
    if len(b) < min_people:
        return None, f"{len(b)} people whole in the coarse levels, need {min_people}"
    h = b[:, 3] - b[:, 1]
    design = np.stack([b[:, 3], 0.5 * (b[:, 0] + b[:, 2]), np.ones(len(b))], axis=1)
    use = np.ones(len(b), dtype=bool)
    for _ in range(3):
        w = 1.0 / h[use]
        coef = np.linalg.lstsq(design[use] * w[:, None], h[use] * w, rcond=None)[0]
        pred = design @ coef
        if (pred[use] <= 0).any():
            return None, "the fitted heights are not positive where people stand"
        log_r = np.log(h / np.maximum(pred, 1e-9))
        med = np.median(log_r[use])
        sigma = MAD_TO_SIGMA * np.median(np.abs(log_r[use] - med)) + 1e-6
        use = np.abs(log_r - med) <= 3 * sigma
        if use.sum() < min_people:
            return None, "too few people agree on one ground plane"
    a, bx, c = (float(v) for v in coef)
    if a <= 0:
        return None, f"heights do not grow towards the bottom of the frame (slope {a:.3g})"
    tolerance = max(min_tolerance, 1.25 * float(np.exp(np.quantile(np.abs(log_r[use]), 0.98))))
    if tolerance > max_tolerance:
        why = f"heights scatter by a factor {tolerance:.1f} about a ground plane (limit {max_tolerance})"
        return None, why
    return HeightPrior(a, bx, c, tolerance, int(use.sum())), ""


def prune_tiles(tiles: list[Tile], prior: HeightPrior, margin: float = 1.25) -> list[Tile]:
    """The tiles where someone standing on the prior's plane could be whole and in the level's band.

    A person whole in a tile of level k has feet (box bottom centre) inside the tile's full-res
    rectangle; the prediction is linear, so its extremes over the tile lie at the corners.
    """
    kept = []
    for t in tiles:
        s = 2.0**t.level
        xs = np.array([t.x0, t.x1, t.x0, t.x1]) * s
        ys = np.array([t.y0, t.y0, t.y1, t.y1]) * s
        pred = prior.height(xs, ys)
        if pred.max() <= 0:
            continue  # the tile lies above the horizon: nobody stands there
        lo, hi = max(pred.min(), 0.0) / prior.tolerance, pred.max() * prior.tolerance
        if lo < t.band[1] * margin and hi >= t.band[0] / margin:
            kept.append(t)
    return kept


def read_tile(levels: list[Any], tile: Tile) -> np.ndarray:
    """A tile's (h, w, 3) uint8 pixels from a stored pyramid (level k downsampled 2^k; arrays indexable
    [y0:y1, x0:x1], e.g. Zarr). Levels coarser than the pyramid stores are made from its coarsest level
    with the same 2x2 means the ingest uses, so the pixels equal those of a deeper pyramid; enlarged
    levels (< 0) from level 0 (`_upsampled`)."""
    from tasks.pyramid import downsample2x

    if tile.level < 0:
        return _upsampled(levels[0], tile)
    top = len(levels) - 1
    if tile.level <= top:
        return np.asarray(levels[tile.level][tile.y0 : tile.y1, tile.x0 : tile.x1])
    f = 2 ** (tile.level - top)
    region = np.asarray(levels[top][tile.y0 * f : tile.y1 * f, tile.x0 * f : tile.x1 * f])
    for _ in range(tile.level - top):
        region = downsample2x(region)
    return region[: tile.y1 - tile.y0, : tile.x1 - tile.x0]


def _upsampled(level0: Any, tile: Tile) -> np.ndarray:
    """A tile of an enlarged level (tile.level < 0): bilinear, pixel centres aligned, as cv2.resize of
    the whole frame by 2^-level would give (one source pixel of context on each side)."""
    import cv2

    f = 2**-tile.level
    h0, w0 = level0.shape[:2]
    r0, c0 = max(tile.y0 // f - 1, 0), max(tile.x0 // f - 1, 0)
    r1, c1 = min(-(-tile.y1 // f) + 1, h0), min(-(-tile.x1 // f) + 1, w0)
    region = np.ascontiguousarray(level0[r0:r1, c0:c1])
    up = cv2.resize(region, ((c1 - c0) * f, (r1 - r0) * f), interpolation=cv2.INTER_LINEAR)
    return up[tile.y0 - r0 * f : tile.y1 - r0 * f, tile.x0 - c0 * f : tile.x1 - c0 * f]


def cut_flags(boxes: np.ndarray, tile: Tile) -> np.ndarray:
    """boxes (N, 4) in the tile's own pixels -> (N,) bool: touches an interior edge of the tile."""
    w, h = tile.x1 - tile.x0, tile.y1 - tile.y0
    left, top, right, bottom = tile.interior
    t = CUT_TOLERANCE
    return (
        (left & (boxes[:, 0] <= t))
        | (top & (boxes[:, 1] <= t))
        | (right & (boxes[:, 2] >= w - t))
        | (bottom & (boxes[:, 3] >= h - t))
    )


def detect_tiles(
    tiles: Iterable[Tile],
    read: Callable[[Tile], T],
    detector: Callable[[list[T]], list[np.ndarray]],
    batch: int = 8,
) -> np.ndarray:
    """Run `detector` on every tile; (N, 8) float64 detections, columns DET_COLUMNS, full-res pixels.

    read(tile) -> the tile's input (its (h, w, 3) uint8 RGB pixels, or those already prepared for the
    network); detector(inputs) -> per input (K, 5) boxes x1, y1, x2, y2, score in the tile's pixels.
    """
    out: list[np.ndarray] = []
    tiles = list(tiles)
    chunks = [tiles[b0 : b0 + batch] for b0 in range(0, len(tiles), batch)]
    # One thread reads the next batch of tiles (decompression releases the GIL) while this one runs
    # the detector; `read` is only ever called from that thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(lambda c: [read(t) for t in c], chunks[0]) if chunks else None
        for k, chunk in enumerate(chunks):
            assert pending is not None
            images = pending.result()
            if k + 1 < len(chunks):
                pending = pool.submit(lambda c: [read(t) for t in c], chunks[k + 1])
            out.extend(_to_frame(chunk, detector(images)))
    return np.concatenate(out) if out else np.zeros((0, len(DET_COLUMNS)))


def _to_frame(chunk: list[Tile], found_per_tile: list[np.ndarray]) -> Iterator[np.ndarray]:
    """Per tile's (K, 5) boxes in tile pixels -> (K, 8) rows of DET_COLUMNS in full-res pixels."""
    for tile, found in zip(chunk, found_per_tile, strict=True):
        if len(found) == 0:
            continue
        s = 2.0**tile.level
        rows = np.empty((len(found), len(DET_COLUMNS)))
        rows[:, 0:4] = (found[:, :4] + [tile.x0, tile.y0, tile.x0, tile.y0]) * s
        rows[:, 4] = found[:, 4]
        rows[:, 5] = tile.level
        rows[:, 6] = tile.tile_id
        rows[:, 7] = cut_flags(found[:, :4], tile)
        yield rows


def merge(
    dets: np.ndarray,
    tiles: list[Tile],
    margin: float = 1.25,
    nms_iou: float = 0.65,
    part_cover: float = 0.8,
    part_ratio: float = 2.0,
) -> np.ndarray:
    """Detections from `detect_tiles` -> the kept rows, best first (see the module docstring).

    dets (N, 8) columns DET_COLUMNS; margin widens each level's band by this factor on both sides;
    a box with at least `part_cover` of its area inside a box `part_ratio` times taller found at a
    coarser level is dropped as a body part (part_ratio 0 keeps them): a fine level sees a near
    person's head or legs as people of its size band, while a coarser level sees the whole person.
    """
    if len(dets) == 0:
        return dets
    levels = dets[:, 5].astype(int)
    # 1. cut boxes that an uncut box of the same level covers for the most part
    keep = np.ones(len(dets), dtype=bool)
    cut = dets[:, 7] > 0
    for lev in np.unique(levels[cut]):
        c = np.flatnonzero(cut & (levels == lev))
        whole = np.flatnonzero(~cut & (levels == lev))
        if len(whole) == 0:
            continue
        covered = coverage(dets[c, :4], dets[whole, :4]).max(axis=1) >= 0.6
        keep[c[covered]] = False
    # 2. size bands
    band = {t.level: t.band for t in tiles}
    h = dets[:, 3] - dets[:, 1]
    lo = np.array([band[lv][0] for lv in levels])
    hi = np.array([band[lv][1] for lv in levels])
    in_band = (h >= lo) & (h < hi)
    keep &= (h >= lo / margin) & (h < hi * margin)
    idx = np.flatnonzero(keep)
    # 3. NMS: a box of the responsible level outranks any out-of-band box, then score decides
    rank = dets[idx, 4] + in_band[idx]
    kept = dets[idx[nms(dets[idx, :4], rank, nms_iou)]]
    # 4. body parts: a box lying mostly inside a much taller box is a head, torso or legs that a finer
    # level's tile saw of a person found whole at a coarser level
    if part_ratio > 0 and len(kept) > 1:
        hk, lk = kept[:, 3] - kept[:, 1], kept[:, 5]
        inside = coverage(kept[:, :4], kept[:, :4]) >= part_cover
        taller = hk[None, :] >= part_ratio * hk[:, None]
        finer = lk[:, None] < lk[None, :]
        kept = kept[~(inside & taller & finer).any(axis=1)]
    return kept


def drop_short_parts(
    kept: np.ndarray, frame: tuple[int, int], max_ratio: float | None, inside: float = 0.5,
    taller: float = 1.3,
) -> np.ndarray:  # fmt: skip
    """Kept rows (N, 8) less the boxes that are body parts by the ground plane's height line.

    The line h = a y + b x + c (fit_height_prior over the kept boxes themselves, full-res px; frame
    (height, width) px) says how tall a person whose feet are at a box's bottom centre stands. A box
    shorter than `max_ratio` of that and with at least `inside` of its area within a box `taller`
    times its height is a head, torso or upper body (its bottom is not where anyone's feet are): a
    person standing behind another, feet visible, has higher feet in the image and a height that
    fits them. But a person whose legs another hides, or one seated, is short too: on real photos
    this drops back-row people and seated spectators, so `detect.part_height` is off by default
    (benchmarks/README.md). With no line (too few people, no single floor) or max_ratio None,
    nothing is dropped.
    """
    if max_ratio is None or len(kept) < 2:
        return kept
    prior, _ = fit_height_prior(kept[:, :4], frame)
    if prior is None:
        return kept
    b = kept[:, :4]
    h = b[:, 3] - b[:, 1]
    short = h < max_ratio * prior.height(0.5 * (b[:, 0] + b[:, 2]), b[:, 3])
    within = coverage(b, b) * (h[None, :] >= taller * h[:, None])
    np.fill_diagonal(within, 0.0)
    return kept[~(short & (within.max(axis=1) >= inside))]


def coarse_prior(
    raw: np.ndarray, coarse: list[Tile], frame: tuple[int, int], margin: float = 1.25, **fit: Any
) -> tuple[HeightPrior | None, str]:
    """The height prior from the coarse tiles' raw detections (N, 8), columns DET_COLUMNS.

    They are merged as if the coarse levels were the whole plan (the finest of them also keeps everyone
    smaller than its band), so the fit gets the small far people that reach the extrapolated rows.
    `fit` goes to `fit_height_prior`.
    """
    lowest = min(t.level for t in coarse)
    opened = [replace(t, band=(0.0, t.band[1])) if t.level == lowest else t for t in coarse]
    people = merge(raw, opened, margin=margin)
    return fit_height_prior(people[:, :4], frame, **fit)


def detect_image(
    image: np.ndarray,
    detector: Detector,
    input_size: tuple[int, int] = (416, 416),
    prune: bool = False,
    min_person: float | None = None,
) -> np.ndarray:
    """The whole detect stage on one in-memory frame (H, W, 3) uint8 RGB: default tile plan (down to
    `min_person`), per-tile detection (coarse levels first and fine tiles pruned by their height prior
    when `prune`), merge. Returns kept rows (N, 8), columns DET_COLUMNS, best first."""
    tiles = tile_plan(image.shape[0], image.shape[1], input_size, min_person=min_person)
    coarse, fine = split_plan(tiles) if prune else (tiles, [])

    def run(ts: list[Tile]) -> np.ndarray:
        return detect_tiles(ts, lambda t: read_tile([image], t), detector)

    raw = run(coarse)
    if fine:
        prior, _ = coarse_prior(raw, coarse, image.shape[:2])
        fine = fine if prior is None else prune_tiles(fine, prior)
        raw = np.concatenate([raw, run(fine)])
    return merge(raw, coarse + fine)


def _raw(batches: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(batches) if batches else np.zeros((0, len(DET_COLUMNS)))


def check_frame_size(image_wh: tuple[int, int], min_person: float | None) -> None:
    """InputError when a frame of image_wh px cannot hold a person the detector can see: people
    reach it at >= MIN_INPUT_PX tall, or at `min_person` (detect.min_person) when the frame is
    also tiled enlarged."""
    from tasks import InputError

    width, height = image_wh
    least = MIN_INPUT_PX if min_person is None else min(min_person, MIN_INPUT_PX)
    if height < least:
        raise InputError(
            f"image too small ({width}x{height}; the detector needs people >= {least:g} px tall, so a "
            f"frame >= {least:g} px high; detect.min_person enlarges smaller frames)"
        )


def plan_for(image_wh: tuple[int, int], cfg: DetectConfig) -> list[Tile]:
    """The tile plan of a frame of image_wh px for the configured detector's input size."""
    from tasks.models.registry import load_detector

    check_frame_size(image_wh, cfg.min_person)
    width, height = image_wh
    size = load_detector(cfg.backend, cfg.model, cfg.input_size, cfg.device).size
    return tile_plan(
        height, width, size, person_px=cfg.person_px, margin=cfg.margin, max_person=cfg.max_person,
        min_person=cfg.min_person,
    )  # fmt: skip


def detect_batch(levels: list[Any], tiles: list[Tile], cfg: DetectConfig) -> np.ndarray:
    """Detections (N, 8), columns DET_COLUMNS, of the configured detector on a batch of tiles of a
    frame's pyramid `levels`."""
    from tasks.models.registry import load_detector

    model = load_detector(cfg.backend, cfg.model, cfg.input_size, cfg.device)

    def detector(prepared: list[tuple[np.ndarray, float]]) -> list[np.ndarray]:
        return model.detect(prepared, score_thr=cfg.score_threshold, nms_iou=cfg.nms_iou)

    # The reader thread letterboxes too: the network's thread only runs the network.
    return detect_tiles(tiles, lambda t: model.prepare(read_tile(levels, t)), detector)


def prune_fine(
    batches: list[np.ndarray], coarse: list[Tile], fine: list[Tile], image_wh: tuple[int, int],
    cfg: DetectConfig,
) -> dict[str, Any]:  # fmt: skip
    """The fine tiles worth running after the coarse ones' detections (batches of (N, 8)): those the
    ground-plane height prior leaves, or all when none can be fitted. {"tiles": the fine tiles to run,
    "prior": the HeightPrior as a dict or None, "why": why none}."""
    width, height = image_wh
    prior, why = coarse_prior(
        _raw(batches), coarse, (height, width), margin=cfg.margin, min_people=cfg.prune_min_people,
        min_tolerance=cfg.prune_tolerance,
    )  # fmt: skip
    kept = fine if prior is None else prune_tiles(fine, prior, margin=cfg.margin)
    return {"tiles": kept, "prior": None if prior is None else asdict(prior), "why": why}


def merge_batches(
    batches: list[np.ndarray], tiles: list[Tile], cfg: DetectConfig, image_wh: tuple[int, int]
) -> tuple[np.ndarray, int]:
    """A frame's batch detections merged across its tiles and levels, less the body parts the ground
    plane's height line finds (cfg.part_height): kept rows (N, 8) and how many raw detections there
    were. image_wh: the frame's (width, height) px."""
    raw = _raw(batches)
    kept = merge(raw, tiles, margin=cfg.margin, nms_iou=cfg.nms_iou)
    return drop_short_parts(kept, (image_wh[1], image_wh[0]), cfg.part_height), len(raw)
