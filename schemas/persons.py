"""The `persons` contract: the product, one row per person (../shared/DESIGN.md).

A Parquet dataset `<output>/<scene>/persons/<frame>.parquet`: one file per frame, and every file holds
its `scene` and `frame_id` as string columns. Not hive directories (`frame_id=0001/`): readers infer a
partition's type from its values, so pandas and polars would read frame `0001` back as the integer 1, and
a column both in the file and in the path fails pandas' schema merge. `pd.read_parquet(persons_dir)`,
`pl.read_parquet(f"{persons_dir}/*.parquet")` and DuckDB's `read_parquet('.../persons/*.parquet')` read
the dataset as it is; the persons of several scenes are `<output>/*/persons/*.parquet`.
Each file carries the key `gigacrowd` in its Parquet key-value metadata: a JSON object saying what the
numbers mean (body model, gender, betas, rotation format, camera convention, units, pipeline version,
config hash), so a file explains itself when it travels alone.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

METADATA_KEY = "gigacrowd"


def _f32_list(n: int, *inner: int) -> pa.DataType:
    t: pa.DataType = pa.float32()
    for d in reversed((n, *inner)):
        t = pa.list_(t, d)
    return t


PERSONS = pa.schema(
    [
        pa.field(name, kind, nullable=False)
        for name, kind in [
            ("scene", pa.string()),
            ("frame_id", pa.string()),
            ("person_id", pa.int64()),
            ("bbox", _f32_list(4)),
            ("det_score", pa.float32()),
            ("kp2d", _f32_list(17, 3)),
            ("betas", _f32_list(10)),
            ("global_orient", _f32_list(3)),
            ("body_pose", _f32_list(69)),
            ("transl", _f32_list(3)),
            ("scale", pa.float32()),
            ("joints3d", _f32_list(24, 3)),
            ("pelvis", _f32_list(3)),
            ("focal", pa.float32()),
            ("cx", pa.float32()),
            ("cy", pa.float32()),
            ("crop_size", pa.float32()),
            ("finetuned", pa.bool_()),
            ("keypoint_error", pa.float32()),
            ("ground_distance", pa.float32()),
            ("stature", pa.float32()),
            ("support", pa.string()),
        ]
    ]
)


def file_metadata(
    body_model: str, body_sha256: str, pipeline_version: str, config_hash: str, **extra: Any
) -> dict[str, str]:
    """The key-value metadata of one persons file."""
    doc = {
        "contract": "persons",
        "body_model": body_model,
        "body_model_sha256": body_sha256,
        "gender": "neutral",
        "num_betas": 10,
        "rotation_format": "axis-angle (radians), SMPL joint order; global_orient in the camera frame",
        "vertices": "scale * body_model(global_orient, body_pose, betas) + transl",
        "scale": "GigaCrowd scale_smpl: 1, or the body's scale when the crowd step stood the person on "
        "its level (crowd.global.snap; the stature within crowd.global.stature_prior)",
        "camera": "OpenCV: x right, y down, z forward; focal, cx, cy in full-resolution pixels",
        "units": {"length": "metres", "pixels": "full-resolution pixels of the original frame"},
        "bbox": "x1, y1, x2, y2",
        "kp2d": "COCO-17 x, y, confidence",
        "joints3d": "24 SMPL joints, camera frame, scale and transl included; pelvis = joint 0",
        "finetuned": "true when the crowd step produced the row, false when the regressor did",
        "keypoint_error": "confidence-weighted squared reprojection error in box units (x - c) / b",
        "ground_distance": "metres from the feet to the frame's ground plane (ground_plane), before the snap",
        "stature": "metres: the body's rest-pose height times scale",
        "support": "floor, level_2, ... (further levels), not_standing, off_floor or not_judged: what the "
        "crowd step judged the person stands on; only people on a level are snapped to it",
        "frame_id": "the frame's name in the run (a directory of <output>/<scene>/), always a string",
        "pipeline_version": pipeline_version,
        "config_hash": config_hash,
        **extra,
    }
    return {METADATA_KEY: json.dumps(doc, sort_keys=True)}


def read_metadata(schema: pa.Schema) -> dict[str, Any]:
    """The `gigacrowd` metadata of a persons file's schema (ValueError when absent)."""
    raw = (schema.metadata or {}).get(METADATA_KEY.encode())
    if raw is None:
        raise ValueError(f"no {METADATA_KEY!r} metadata: not a persons file")
    return json.loads(raw)
