"""The product tables: per-person rows from a frame's stage tables, the persons dataset, and the
GigaCrowd `predict.json` made from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from schemas.layout import MANIFEST, PERSONS_DIR, persons_file
from schemas.persons import PARTITIONS, PERSONS
from schemas.predict import FramePrediction
from schemas.tables import detections_array, fixed_array, fixed_list, keypoints_array, write_parquet


def persons_table(detections: pa.Table, keypoints: pa.Table, smpl: pa.Table) -> pa.Table:
    """One row per detection (persons contract, without the partition columns) from the frame's
    detections, keypoints and smpl-contract tables (smpl.parquet or, after the crowd step,
    crowd.parquet), all listing the same det_ids in the same order."""
    ids = detections.column("det_id").to_numpy()
    for name, t in (("keypoints", keypoints), ("smpl", smpl)):
        if not np.array_equal(t.column("det_id").to_numpy(), ids):
            raise ValueError(f"the {name} table does not list the detections' det_ids in order")
    det = detections_array(detections)
    joints = fixed_array(smpl, "joints3d", 24, 3)
    cols = {
        "person_id": pa.array(ids.astype(np.int64)),
        "bbox": fixed_list(det[:, :4], 4),
        "det_score": pa.array(det[:, 4].astype(np.float32)),
        "kp2d": fixed_list(keypoints_array(keypoints), 17, 3),
        **{c: smpl.column(c) for c in ("betas", "global_orient", "body_pose", "transl", "scale", "joints3d")},
        "pelvis": fixed_list(joints[:, 0], 3),
        **{c: smpl.column(c) for c in ("focal", "cx", "cy", "crop_size", "finetuned")},
        **{c: smpl.column(c) for c in ("keypoint_error", "ground_distance", "stature", "support")},
    }
    return pa.table(cols, schema=PERSONS)


@dataclass(frozen=True)
class FramePersons:
    """A frame's rows of the persons dataset (persons contract, no partition columns), the file's
    key-value metadata, and the frame's ground plane (4,) n . X + d = 0 when one was fitted."""

    table: pa.Table
    metadata: dict[str, str]
    plane: np.ndarray | None


def frame_persons(
    detections: pa.Table, keypoints: pa.Table, smpl: pa.Table, scene: str, frame: str, config_hash: str
) -> FramePersons:
    """The persons rows of a frame from its detections, keypoints and final smpl-contract table
    (crowd.parquet after the crowd step, else smpl.parquet), with the metadata that explains them."""
    import json
    from importlib import metadata

    from schemas.persons import file_metadata

    table = persons_table(detections, keypoints, smpl)
    text = {k.decode(): v.decode() for k, v in (smpl.schema.metadata or {}).items()}
    plane = json.loads(text.get("ground_plane", "null"))
    info = file_metadata(
        body_model=text.get("body_model", ""), body_sha256=text.get("body_model_sha256", ""),
        pipeline_version=metadata.version("gigacrowd-pipeline"), config_hash=config_hash,
        regressor=text.get("regressor", ""), crowd_method=text.get("crowd_method"),
        ground_plane=plane, frame=frame, scene=scene,
    )  # fmt: skip
    found = plane is not None and bool(np.isfinite(plane).all())
    return FramePersons(table, info, np.asarray(plane) if found else None)


def write_frame(dataset: Path, scene: str, frame: str, table: pa.Table, metadata: dict[str, str]) -> Path:
    """Install a frame's rows atomically: readers see the old file or the new one, never a part."""
    path = persons_file(dataset, scene, frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(table.replace_schema_metadata(metadata), path)
    return path


def read_persons(dataset: Path) -> pa.Table:
    """Every row of a persons dataset, with its scene and frame_id partition columns."""
    part = ds.partitioning(PARTITIONS, flavor="hive")
    return ds.dataset(dataset, format="parquet", partitioning=part, schema=PERSONS.append(
        PARTITIONS.field("scene")).append(PARTITIONS.field("frame_id"))).to_table()  # fmt: skip


def gigacrowd_frame(rows: pa.Table) -> FramePrediction:
    """One frame's rows (persons contract) as a GigaCrowd frame: K from focal, cx, cy; pose = global
    orient + body pose (72); shape = betas; trans_cam = transl (added to the raw body output);
    scale_smpl = scale."""
    if len(rows) == 0:
        raise ValueError("a frame without people has no camera in the persons table")
    f, cx, cy = (float(rows.column(c)[0].as_py()) for c in ("focal", "cx", "cy"))
    K = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    pose = np.concatenate([fixed_array(rows, "global_orient", 3), fixed_array(rows, "body_pose", 69)], 1)
    scale = rows.column("scale").to_numpy().astype(np.float64)
    return FramePrediction.from_arrays(
        K, pose, fixed_array(rows, "betas", 10), fixed_array(rows, "transl", 3), scale
    )


def gigacrowd_predictions(scene_dir: Path) -> dict[str, FramePrediction]:
    """predict.json of a run's scene directory: one entry per frame of its persons dataset, keyed by
    the frame's original image file name (from the frame's manifest)."""
    import json

    table = read_persons(scene_dir / PERSONS_DIR)
    frames = table.column("frame_id").to_numpy(zero_copy_only=False)
    out: dict[str, FramePrediction] = {}
    for frame in sorted(set(frames)):
        manifest = json.loads((scene_dir / frame / MANIFEST).read_text())
        rows = table.filter(pa.array(frames == frame))
        out[Path(manifest["source"]).name] = gigacrowd_frame(rows.sort_by("person_id"))
    return out


def person_meshes(rows: pa.Table, body: object) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, V, 3) m, camera frame, of the people in `rows` (persons contract) posed by `body`
    (tasks/models/body.py BodyModel), and the body's faces (F, 3)."""
    pose = np.concatenate([fixed_array(rows, "global_orient", 3), fixed_array(rows, "body_pose", 69)], 1)
    scale = rows.column("scale").to_numpy()
    verts, _, _ = body.numpy_forward(  # type: ignore[attr-defined]
        pose, fixed_array(rows, "betas", 10), fixed_array(rows, "transl", 3), scale=scale
    )
    return verts, np.asarray(body.faces)  # type: ignore[attr-defined]


def write_meshes(path: Path, verts: np.ndarray, faces: np.ndarray) -> None:
    """One mesh file of everyone in verts (N, V, 3) sharing faces (F, 3); the format follows the
    suffix (.ply, .obj, .glb); camera frame, metres (OpenCV axes: y down). Written atomically."""
    import trimesh

    from schemas.io import atomic_output

    n, v = verts.shape[:2]
    all_faces = (faces[None] + (np.arange(n) * v)[:, None, None]).reshape(-1, 3)
    mesh = trimesh.Trimesh(vertices=verts.reshape(-1, 3), faces=all_faces, process=False)
    data = mesh.export(file_type=path.suffix.lstrip(".").lower())
    with atomic_output(path) as tmp:
        tmp.write_bytes(data if isinstance(data, bytes) else data.encode())
