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

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.io import atomic_output

DETECTIONS = pa.schema(
    [
        pa.field("frame_id", pa.string(), nullable=False),
        pa.field("det_id", pa.int64(), nullable=False),
        pa.field("x1", pa.float32(), nullable=False),
        pa.field("y1", pa.float32(), nullable=False),
        pa.field("x2", pa.float32(), nullable=False),
        pa.field("y2", pa.float32(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
        pa.field("level", pa.int16(), nullable=False),
        pa.field("tile_id", pa.int32(), nullable=False),
    ],
    metadata={"contract": "detections", "pixels": "full-resolution, float32"},
)

KEYPOINTS = pa.schema(
    [
        pa.field("frame_id", pa.string(), nullable=False),
        pa.field("det_id", pa.int64(), nullable=False),
        pa.field("kp2d", pa.list_(pa.list_(pa.float32(), 3), 17), nullable=False),
    ],
    metadata={"contract": "keypoints", "kp2d": "17 x (x, y, confidence), COCO-17, full-resolution pixels"},
)


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
    flat = pa.array(np.ascontiguousarray(kp2d, dtype=np.float32).reshape(-1))
    inner = pa.FixedSizeListArray.from_arrays(flat, 3)
    outer = pa.FixedSizeListArray.from_arrays(inner, 17)
    cols = {
        "frame_id": pa.array([frame] * len(det_id), pa.string()),
        "det_id": pa.array(np.asarray(det_id, dtype=np.int64)),
        "kp2d": outer,
    }
    return pa.table(cols, schema=KEYPOINTS)


def keypoints_array(table: pa.Table) -> np.ndarray:
    """The kp2d column as (N, 17, 3) float32."""
    col = table.column("kp2d").combine_chunks()
    return col.flatten().flatten().to_numpy(zero_copy_only=False).reshape(len(table), 17, 3)


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
