"""Precomputed person boxes (and keypoints) from other tools, in the detections/keypoints layout.

Formats (`fmt`):
- `coco-results`: COCO detection/keypoint results, a list of {"image_id", "category_id", "bbox":
  [x, y, w, h], "score", "keypoints"?: [x, y, c] * 17}; person = category 1. image_id is a file name
  or stem, or an integer resolved through a COCO dataset json given as `images` (its "images" list).
- `largecrowd`: {"frame_info": {"<image file>": [{"bbox": [x1, y1, x2, y2], "keypoints"?: 17 x
  [x/W, y/H, v], "score"?}]}, "image_shape"?: {"height", "width"}} (our truth.json is one); keypoints
  are image-normalised, so the image size must be in the file; v > 0 becomes confidence 1.
- `panda`: PANDA image annotations {"<scene>/<image>.jpg": {"image size": {"height", "width"},
  "objects list": [{"category": "person", "rects": {"full body": {"tl": {"x", "y"}, "br": {...}}}}]}}
  with coordinates normalised to the image; "full body" boxes of persons (crowds and "fake person"
  entries are skipped).
Every box comes back in full-resolution pixels as (N, 5) x1, y1, x2, y2, score; keypoints (N, 17, 3)
x, y, confidence, or None when the file has none. Frames are keyed by the image file's stem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from tasks import InputError

if TYPE_CHECKING:
    from schemas.scene import DetectConfig

FORMATS = ("coco-results", "largecrowd", "panda")


@dataclass(frozen=True)
class Imported:
    boxes: np.ndarray  # (N, 5) x1, y1, x2, y2, score; full-resolution pixels
    keypoints: np.ndarray | None  # (N, 17, 3) x, y, confidence, or None

    def above(self, score: float) -> Imported:
        """The people whose box score is at least `score` (boxes and keypoints stay row for row)."""
        keep = self.boxes[:, 4] >= score
        return Imported(self.boxes[keep], None if self.keypoints is None else self.keypoints[keep])


def _stem(key: object) -> str:
    return PurePosixPath(str(key).replace("\\", "/")).stem


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"detections file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None


def _collect(rows: dict[str, list[tuple[list[float], float, np.ndarray | None]]]) -> dict[str, Imported]:
    out = {}
    for frame, items in rows.items():
        boxes = np.array([[*b, s] for b, s, _ in items], np.float64).reshape(-1, 5)
        kps = [k for _, _, k in items]
        if any(k is not None for k in kps) and not all(k is not None for k in kps):
            kps = [k if k is not None else np.zeros((17, 3)) for k in kps]
        keypoints = np.stack(kps) if kps and kps[0] is not None else None
        out[frame] = Imported(boxes, keypoints)
    return out


def _coco(doc: Any, path: Path, images: Path | None) -> dict[str, Imported]:
    dataset = isinstance(doc, dict) and "annotations" in doc
    listing = doc if dataset else _load(images) if images is not None else {}
    names: dict[object, str] = {im["id"]: _stem(im["file_name"]) for im in listing.get("images", [])}
    if dataset:
        doc = doc["annotations"]  # a COCO dataset json: its annotations, score 1
    if not isinstance(doc, list):
        raise InputError(f"{path}: COCO results must be a list of detections")
    rows: dict[str, list[tuple[list[float], float, np.ndarray | None]]] = {}
    for i, d in enumerate(doc):
        try:
            if d.get("category_id", 1) != 1 or d.get("iscrowd", 0):
                continue
            x, y, w, h = (float(v) for v in d["bbox"])
            image_id = d["image_id"]
            kp = d.get("keypoints")
            kp = np.asarray(kp, np.float64).reshape(17, 3) if kp else None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(f"{path}: detection {i} is malformed ({type(e).__name__}: {e})") from None
        if isinstance(image_id, int) and not isinstance(image_id, bool):
            if image_id not in names:
                raise InputError(
                    f"{path}: image_id {image_id} is a number; give the COCO dataset json (images:)"
                )
            frame = names[image_id]
        else:
            frame = _stem(image_id)
        if kp is not None and dataset:
            kp[:, 2] = (kp[:, 2] > 0).astype(float)  # annotation visibility flags 0/1/2 -> confidence
        rows.setdefault(frame, []).append(([x, y, x + w, y + h], float(d.get("score", 1.0)), kp))
    return _collect(rows)


def _largecrowd(doc: Any, path: Path) -> dict[str, Imported]:
    if not isinstance(doc, dict) or not isinstance(doc.get("frame_info"), dict):
        raise InputError(f"{path}: a LargeCrowd file needs a 'frame_info' mapping of image -> people")
    shape = doc.get("image_shape") or {}
    rows: dict[str, list[tuple[list[float], float, np.ndarray | None]]] = {}
    for image, people in doc["frame_info"].items():
        frame = _stem(image)
        rows[frame] = []
        for i, p in enumerate(people):
            try:
                box = [float(v) for v in p["bbox"]][:4]
                kp = p.get("keypoints")
                if kp is not None:
                    if not shape:
                        raise InputError(f"{path}: keypoints are image-normalised but image_shape is missing")
                    kp = np.asarray(kp, np.float64).reshape(17, 3) * [shape["width"], shape["height"], 1]
                    kp[:, 2] = (kp[:, 2] > 0).astype(float)
            except (KeyError, TypeError, ValueError) as e:
                raise InputError(
                    f"{path}: {image} person {i} is malformed ({type(e).__name__}: {e})"
                ) from None
            rows[frame].append((box, float(p.get("score", 1.0)), kp))
    return _collect(rows)


def _panda(doc: Any, path: Path) -> dict[str, Imported]:
    if not isinstance(doc, dict):
        raise InputError(f"{path}: PANDA annotations must map image paths to their annotations")
    rows: dict[str, list[tuple[list[float], float, np.ndarray | None]]] = {}
    for image, ann in doc.items():
        frame = _stem(image)
        rows[frame] = []
        try:
            w, h = float(ann["image size"]["width"]), float(ann["image size"]["height"])
            for obj in ann["objects list"]:
                if obj.get("category") != "person":
                    continue
                r = obj["rects"]["full body"]
                box = [r["tl"]["x"] * w, r["tl"]["y"] * h, r["br"]["x"] * w, r["br"]["y"] * h]
                rows[frame].append((box, 1.0, None))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: {image} is malformed ({type(e).__name__}: {e})") from None
    return _collect(rows)


def read_boxes_cached(path: Path, fmt: str, images: Path | None = None) -> dict[str, Imported]:
    """read_boxes, parsed once per process while the file is unchanged (one big file serves many
    frames; each worker reads it once)."""
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = -1
    return _read_cached(str(path), fmt, str(images) if images else None, stamp)


@lru_cache(maxsize=2)
def _read_cached(path: str, fmt: str, images: str | None, _stamp: int) -> dict[str, Imported]:
    return read_boxes(Path(path), fmt, Path(images) if images else None)


def read_boxes(path: Path, fmt: str, images: Path | None = None) -> dict[str, Imported]:
    """Boxes (and keypoints) per frame stem from a file of another tool (see the module docstring)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown detections file format {fmt!r}; known: {', '.join(FORMATS)}")
    doc = _load(path)
    if fmt == "coco-results":
        return _coco(doc, path, images)
    if fmt == "largecrowd":
        return _largecrowd(doc, path)
    return _panda(doc, path)


def imported(cfg: DetectConfig, frame: str) -> Imported:
    """The people detect.file holds for a frame, above detect.score_threshold."""
    assert cfg.file is not None
    found = read_boxes_cached(
        Path(cfg.file), cfg.file_format, Path(cfg.file_images) if cfg.file_images else None
    )
    if frame not in found:
        raise InputError(f"frame {frame!r} is not in the detections file {cfg.file}")
    return found[frame].above(cfg.score_threshold)


def imported_detections(cfg: DetectConfig, frame: str) -> np.ndarray:
    """A frame's imported boxes as detection rows (N, 7): x1, y1, x2, y2, score, level 0, tile_id -1."""
    boxes = imported(cfg, frame).boxes
    return np.concatenate([boxes, np.zeros((len(boxes), 1)), np.full((len(boxes), 1), -1.0)], 1)


def imported_keypoints(cfg: DetectConfig, frame: str) -> np.ndarray:
    """A frame's imported keypoints (N, 17, 3) float32, row for row with imported_detections."""
    imp = imported(cfg, frame)
    if imp.keypoints is None:
        raise InputError(f"pose2d.backend 'file': {cfg.file} holds no keypoints")
    return imp.keypoints.astype(np.float32)
