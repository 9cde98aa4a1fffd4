"""The product tables: per-person rows from a frame's stage tables, the persons dataset, and the
GigaCrowd `predict.json` made from it."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from schemas.layout import MANIFEST, PERSONS_DIR, persons_file
from schemas.persons import PERSONS
from schemas.predict import FramePrediction
from schemas.tables import detections_array, fixed_array, fixed_list, keypoints_array, write_parquet
from tasks import InputError

if TYPE_CHECKING:
    from tasks.models.body import BodyModel
    from tasks.models.refit import Refit


def persons_table(
    detections: pa.Table, keypoints: pa.Table, smpl: pa.Table, scene: str, frame: str
) -> pa.Table:
    """One row per detection (persons contract) of frame `frame` of scene `scene` from the frame's
    detections, keypoints and smpl-contract tables (smpl.parquet or, after the crowd step,
    crowd.parquet), all listing the same det_ids in the same order."""
    ids = detections.column("det_id").to_numpy()
    for name, t in (("keypoints", keypoints), ("smpl", smpl)):
        if not np.array_equal(t.column("det_id").to_numpy(), ids):
            raise ValueError(f"the {name} table does not list the detections' det_ids in order")
    det = detections_array(detections)
    joints = fixed_array(smpl, "joints3d", 24, 3)
    cols = {
        "scene": pa.array([scene] * len(ids), pa.string()),
        "frame_id": pa.array([frame] * len(ids), pa.string()),
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
    """A frame's rows of the persons dataset (persons contract), the file's
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

    table = persons_table(detections, keypoints, smpl, scene, frame)
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


def write_frame(dataset: Path, frame: str, table: pa.Table, metadata: dict[str, str]) -> Path:
    """Install a frame's rows atomically: readers see the old file or the new one, never a part."""
    path = persons_file(dataset, frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(table.replace_schema_metadata(metadata), path)
    return path


def read_persons(dataset: Path) -> pa.Table:
    """Every row of a persons dataset (`<frame>.parquet` files; temporary files, named `.tmp-...`, are
    not read)."""
    files = sorted(str(p) for p in Path(dataset).glob("*.parquet") if not p.name.startswith("."))
    return ds.dataset(files, format="parquet", schema=PERSONS).to_table()


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


def gigacrowd_predictions(scene_dir: Path, exclude: Collection[str] = ()) -> dict[str, FramePrediction]:
    """predict.json of a run's scene directory: one entry per frame of its persons dataset (less the
    frames named in `exclude`), keyed by the frame's original image file name (from the frame's
    manifest)."""
    import json

    table = read_persons(scene_dir / PERSONS_DIR)
    frames = table.column("frame_id").to_numpy(zero_copy_only=False)
    out: dict[str, FramePrediction] = {}
    for frame in sorted(set(frames) - set(exclude)):
        manifest = json.loads((scene_dir / frame / MANIFEST).read_text())
        rows = table.filter(pa.array(frames == frame))
        out[Path(manifest["source"]).name] = gigacrowd_frame(rows.sort_by("person_id"))
    return out


def failed_frames(scene_dir: Path) -> dict[str, str]:
    """The frames whose latest attempt failed, with the reason, from the scene's manifest
    (`<scene>/manifest.json`: frames -> {"status": "ok" | "pending" | "failed: <why>"}, written by
    pipeline/run.py). {} when there is no scene manifest (a persons dataset made outside a run)."""
    import json

    path = scene_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        frames = json.loads(path.read_text()).get("frames", {})
        status = {name: str(info.get("status", "")) for name, info in frames.items()}
    except (json.JSONDecodeError, AttributeError):
        raise InputError(f"{path} is not a scene manifest (unreadable JSON or no frames)") from None
    failed = {name: s.removeprefix("failed:").strip() for name, s in status.items() if s.startswith("failed")}
    return dict(sorted(failed.items()))


def run_body(scene_dir: Path, exclude: Collection[str] = ()) -> BodyModel:
    """The body model the rows of a run's persons dataset are for (its files' metadata, less the
    frames in `exclude`), loaded and checked to be the file the run used (same sha256)."""
    import pyarrow.parquet as pq

    from schemas.persons import read_metadata
    from tasks.models.body import BodyModel

    named = set()
    for path in (scene_dir / PERSONS_DIR).glob("*.parquet"):
        if not path.name.startswith(".") and path.stem not in exclude:
            meta = read_metadata(pq.read_schema(path))
            named.add((meta.get("body_model", ""), meta.get("body_model_sha256", "")))
    if not named or any(not spec for spec, _ in named):
        raise InputError(f"{scene_dir / PERSONS_DIR}: a persons file does not name its body model")
    if len(named) > 1:
        specs = ", ".join(sorted({spec for spec, _ in named}))
        raise InputError(f"the persons files name {len(named)} body models ({specs}); one is needed")
    ((spec, sha),) = named
    body = BodyModel.load(spec)
    if sha and body.sha256 != sha:
        now, then = body.sha256[:12], sha[:12]
        raise InputError(f"the run's body model {spec} has changed since the run (sha256 {now}, was {then})")
    return body


def refit_frame(pred: FramePrediction, src: BodyModel, dst: BodyModel) -> tuple[FramePrediction, Refit]:
    """A frame's people carried from body `src` to body `dst` (tasks/models/refit.py): betas refitted
    so the rest joints and face keypoints match, pose and scale_smpl unchanged, trans_cam moved by
    scale_smpl * (source pelvis - target pelvis) so the pelvis stays where it was. The same file on
    both sides leaves the frame as it is (residual 0)."""
    from tasks.models.refit import Refit, refit_betas

    a = pred.to_arrays()
    if src.sha256 == dst.sha256:
        zero = np.zeros(len(a.shape))
        return pred, Refit(a.shape, np.zeros((len(a.shape), 3)), zero, zero)
    fit = refit_betas(src.rest_basis(), dst.rest_basis(), a.shape)
    trans = a.trans_cam + a.scale_smpl[:, None] * fit.shift
    return FramePrediction.from_arrays(a.K, a.pose, fit.betas, trans, a.scale_smpl), fit


def unit_scale_frame(pred: FramePrediction, body: BodyModel) -> FramePrediction:
    """A frame's people at scale_smpl 1 (their body's own size), trans_cam moved so each torso centre
    (mean of SMPL joints 1, 2, 16, 17, as the evaluator takes it) stays where it was: with raw torso
    t_b (pose and betas, no scale), s * t_b + trans = t_b + trans', so trans' = trans + (s - 1) t_b.
    Torso positions, hence pairwise distances and depth order, are unchanged."""
    from tasks.evaluate import TORSO_JOINTS

    a = pred.to_arrays()
    joints, _ = body.joints_numpy(a.pose, a.shape)
    torso = joints[:, list(TORSO_JOINTS)].mean(1)
    trans = a.trans_cam + (a.scale_smpl - 1.0)[:, None] * torso
    return FramePrediction.from_arrays(a.K, a.pose, a.shape, trans, 1.0)


def refit_report(fits: Mapping[str, Refit], src: BodyModel, dst: BodyModel) -> dict[str, object]:
    """The refit's residuals as a JSON document: per frame (predict.json's key) and person (in
    person_list order) the RMS and the worst distance over the 24 rest joints and 5 face keypoints, mm,
    with the median and maximum over everybody."""
    rms = np.concatenate([f.residual_mm for f in fits.values()]) if fits else np.zeros(0)
    return {
        "source_body": {"name": src.name, "sha256": src.sha256},
        "target_body": {"name": dst.name, "sha256": dst.sha256},
        "residual": "rest pose: 24 SMPL joints and COCO nose, eyes, ears after the least-squares fit, mm",
        "people": len(rms),
        "median_rms_mm": float(np.median(rms)) if len(rms) else 0.0,
        "max_rms_mm": float(rms.max(initial=0.0)),
        "frames": {
            name: [
                {"rms_mm": round(float(r), 3), "worst_mm": round(float(w), 3)}
                for r, w in zip(f.residual_mm, f.worst_mm, strict=True)
            ]
            for name, f in sorted(fits.items())
        },
    }


def refit_predictions(
    preds: Mapping[str, FramePrediction], src: BodyModel, dst: BodyModel
) -> tuple[dict[str, FramePrediction], dict[str, object]]:
    """Every frame of `preds` carried from body src to body dst (refit_frame), and the residuals'
    report (refit_report)."""
    out, fits = {}, {}
    for name, pred in preds.items():
        out[name], fits[name] = refit_frame(pred, src, dst)
    return out, refit_report(fits, src, dst)


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
