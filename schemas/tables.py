"""Arrow schemas of the per-frame stage tables, and their atomic Parquet I/O.

Pixel coordinates are full-resolution pixels of the original frame (pixel (i, j) covers
[j, j+1) x [i, i+1)), float32.

- `detections` (detect stage, `<frame>/detections.parquet`): one row per merged person box.
  `level` is the pyramid level the box was found at and `tile_id` the tile of the frame's tile plan.
- `keypoints` (pose2d stage, `<frame>/keypoints.parquet`): one row per detection, COCO-17 keypoints
  (x, y, confidence) in order nose, left_eye, right_eye, left_ear, right_ear, left_shoulder,
  right_shoulder, left_elbow, right_elbow, left_wrist, right_wrist, left_hip, right_hip, left_knee,
  right_knee, left_ankle, right_ankle.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.io import atomic_output

T = TypeVar("T")


def _required(fields: list[tuple[str, pa.DataType]], metadata: dict[str, str]) -> pa.Schema:
    """A table contract: every column non-nullable; metadata["contract"] names it in errors."""
    return pa.schema([pa.field(name, kind, nullable=False) for name, kind in fields], metadata=metadata)


DETECTIONS = _required(
    [
        ("frame_id", pa.string()),
        ("det_id", pa.int64()),
        ("x1", pa.float32()),
        ("y1", pa.float32()),
        ("x2", pa.float32()),
        ("y2", pa.float32()),
        ("score", pa.float32()),
        ("level", pa.int16()),
        ("tile_id", pa.int32()),
    ],
    metadata={"contract": "detections", "pixels": "full-resolution, float32"},
)

KEYPOINTS = _required(
    [
        ("frame_id", pa.string()),
        ("det_id", pa.int64()),
        ("kp2d", pa.list_(pa.list_(pa.float32(), 3), 17)),
    ],
    metadata={"contract": "keypoints", "kp2d": "17 x (x, y, confidence), COCO-17, full-resolution pixels"},
)


SMPL = _required(
    [
        ("frame_id", pa.string()),
        ("det_id", pa.int64()),
        ("global_orient", pa.list_(pa.float32(), 3)),
        ("body_pose", pa.list_(pa.float32(), 69)),
        ("betas", pa.list_(pa.float32(), 10)),
        ("transl", pa.list_(pa.float32(), 3)),
        ("scale", pa.float32()),
        ("cam_crop", pa.list_(pa.float32(), 3)),
        ("joints3d", pa.list_(pa.list_(pa.float32(), 3), 24)),
        ("focal", pa.float32()),
        ("cx", pa.float32()),
        ("cy", pa.float32()),
        ("crop_size", pa.float32()),
        ("crop_x", pa.float32()),
        ("crop_y", pa.float32()),
        ("finetuned", pa.bool_()),
        ("keypoint_error", pa.float32()),
        ("ground_distance", pa.float32()),
        ("stature", pa.float32()),
        ("support", pa.string()),
    ],
    metadata={
        "contract": "smpl",
        "pose": "axis-angle radians, SMPL joint order; global_orient in the camera frame",
        "transl": "metres, camera frame, added to the raw body-model output",
        "scale": "the raw body-model output is scaled by it before transl is added (GigaCrowd scale_smpl): "
        "1, or the body's scale when the crowd step stood the person on its level (the feet where their "
        "ray meets it; the stature within the prior)",
        "joints3d": "24 SMPL joints, metres, camera frame (scale and transl included)",
        "camera": "OpenCV: x right, y down, z forward; focal, cx, cy in full-resolution pixels",
        "cam_crop": "CLIFF crop camera (s, tx, ty); crop_size b and centre crop_x, crop_y in pixels",
        "finetuned": "true after the crowd step (crowd.parquet), false straight from the regressor",
        "keypoint_error": "confidence-weighted squared COCO-17 reprojection error, box units (x - c) / b",
        "ground_distance": "metres from the feet (ankle midpoint) to the frame's ground plane, before the "
        "snap: the crowd step's main floor, or in smpl.parquet the robust plane of everyone's feet (NaN: no "
        "plane)",
        "stature": "metres: the body's rest-pose height (its betas) times scale",
        "support": "what the person stands on, as the crowd step judged it: floor (the main level), level_2, "
        "... (further levels), not_standing (seated, riding, crouching), off_floor (on no level found), "
        "not_judged",
    },
)


def fixed_list(a: np.ndarray, *dims: int) -> pa.Array:
    """(N, *dims) numbers -> a nested fixed-size-list float32 column."""
    arr: pa.Array = pa.array(np.ascontiguousarray(a, dtype=np.float32).reshape(-1))
    for d in reversed(dims):
        arr = pa.FixedSizeListArray.from_arrays(arr, d)
    return arr


def fixed_array(table: pa.Table, column: str, *dims: int) -> np.ndarray:
    """A nested fixed-size-list column as (N, *dims) float32."""
    col = table.column(column).combine_chunks()
    for _ in dims:
        col = col.flatten()
    return col.to_numpy(zero_copy_only=False).reshape(len(table), *dims)


@dataclass(frozen=True)
class SmplRows:
    """One frame's people in the smpl contract, row i = person i; the fields are SMPL's columns (all but
    the constant frame_id). det_id (N,); global_orient (N, 3) and body_pose (N, 69) axis-angle rad;
    betas (N, 10); transl (N, 3) m; scale (N,); cam_crop (N, 3); joints3d (N, 24, 3) m; focal, cx, cy
    (N,) px; crop_size, crop_x, crop_y (N,) px; finetuned (N,) bool; keypoint_error (N,) squared box units;
    ground_distance (N,) m; stature (N,) m; support (N,) str. Column meanings: SMPL's metadata."""

    det_id: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    scale: np.ndarray
    cam_crop: np.ndarray
    joints3d: np.ndarray
    focal: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    crop_size: np.ndarray
    crop_x: np.ndarray
    crop_y: np.ndarray
    finetuned: np.ndarray
    keypoint_error: np.ndarray
    ground_distance: np.ndarray
    stature: np.ndarray
    support: np.ndarray

    def __len__(self) -> int:
        return len(self.det_id)


@dataclass(frozen=True)
class FrameSmpl:
    """A frame's smpl table: its rows and the file's key-value metadata (regressor, body model, ground
    plane and camera as JSON, ...)."""

    rows: SmplRows
    metadata: dict[str, str]


def _dims(kind: pa.DataType) -> tuple[pa.DataType, tuple[int, ...]]:
    """The leaf type and the nested fixed sizes of a column type (float32, (24, 3)) for list<list<>>."""
    dims: list[int] = []
    while isinstance(kind, pa.FixedSizeListType):
        dims.append(kind.list_size)
        kind = kind.value_type
    return kind, tuple(dims)


def record_table(schema: pa.Schema, frame: str, record: Any, metadata: dict[str, str]) -> pa.Table:
    """A frame's table of `schema` from a record (a dataclass whose fields are the schema's columns but
    frame_id); arrays are cast to the column types, `metadata` joins the schema's own."""
    n = len(record)
    cols = {}
    for field in schema:
        if field.name == "frame_id":
            cols["frame_id"] = pa.array([frame] * n, pa.string())
            continue
        leaf, dims = _dims(field.type)
        value = getattr(record, field.name)
        if dims:
            cols[field.name] = fixed_list(value, *dims)
        else:
            cols[field.name] = pa.array(np.asarray(value, leaf.to_pandas_dtype()).reshape(n), leaf)
    text = {k.encode(): v.encode() for k, v in metadata.items()}
    return pa.table(cols, schema=schema.with_metadata({**(schema.metadata or {}), **text}))


def table_record(table: pa.Table, cls: type[T]) -> T:
    """The record `cls` (fields: the table's columns but frame_id) of a table, columns as numpy."""
    values = {}
    for f in fields(cls):  # type: ignore[arg-type]
        _, dims = _dims(table.schema.field(f.name).type)
        values[f.name] = fixed_array(table, f.name, *dims) if dims else table.column(f.name).to_numpy()
    return cls(**values)


def smpl_table(frame: str, smpl: FrameSmpl) -> pa.Table:
    """The smpl-contract table of a frame (smpl.parquet, crowd.parquet)."""
    return record_table(SMPL, frame, smpl.rows, smpl.metadata)


def read_smpl(path: Path) -> FrameSmpl:
    """A frame's smpl table as its record and metadata, checked against the contract."""
    table = read_table(path, SMPL)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return FrameSmpl(table_record(table, SmplRows), meta)


def contract_hash(*schemas: pa.Schema) -> str:
    """A short hash of the contracts' columns (names, types, nullability): a table written under other
    columns is stale, so a stage's resume key includes the hash of the tables it writes."""
    text = "|".join(f"{f.name}:{f.type}:{f.nullable}" for s in schemas for f in s)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def detections_table(frame: str, rows: np.ndarray) -> pa.Table:
    """rows (N, >= 7) x1, y1, x2, y2, score, level, tile_id (tasks/detect.py DET_COLUMNS order)."""
    n = len(rows)
    cols = {
        "frame_id": pa.array([frame] * n, pa.string()),
        "det_id": pa.array(np.arange(n, dtype=np.int64)),
        **{
            c: pa.array(rows[:, i].astype(np.float32))
            for i, c in enumerate(("x1", "y1", "x2", "y2", "score"))
        },
        "level": pa.array(rows[:, 5].astype(np.int16)),
        "tile_id": pa.array(rows[:, 6].astype(np.int32)),
    }
    return pa.table(cols, schema=DETECTIONS)


def keypoints_table(frame: str, det_id: np.ndarray, kp2d: np.ndarray) -> pa.Table:
    """det_id (N,), kp2d (N, 17, 3) x, y (full-res pixels), confidence."""
    cols = {
        "frame_id": pa.array([frame] * len(det_id), pa.string()),
        "det_id": pa.array(np.asarray(det_id, dtype=np.int64)),
        "kp2d": fixed_list(kp2d, 17, 3),
    }
    return pa.table(cols, schema=KEYPOINTS)


def keypoints_array(table: pa.Table) -> np.ndarray:
    """The kp2d column as (N, 17, 3) float32."""
    return fixed_array(table, "kp2d", 17, 3)


def detections_array(table: pa.Table) -> np.ndarray:
    """(N, 5) float32 x1, y1, x2, y2, score."""
    return np.stack([table.column(c).to_numpy() for c in ("x1", "y1", "x2", "y2", "score")], 1)


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write a stage table atomically: never a half-written table under its final name."""
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path: Path, schema: pa.Schema) -> pa.Table:
    """Read a stage table, checking it has the contract's columns and types."""
    table = pq.read_table(path)
    if not table.schema.equals(schema, check_metadata=False):
        contract = schema.metadata[b"contract"].decode()
        raise ValueError(f"{path}: columns {table.schema.names} do not match the {contract} contract")
    return table


def _check_record(cls: type, schema: pa.Schema) -> None:
    names = [f.name for f in fields(cls)]
    if names != [n for n in schema.names if n != "frame_id"]:
        raise TypeError(f"{cls.__name__} fields {names} are not the {schema.metadata[b'contract']} columns")


_check_record(SmplRows, SMPL)
