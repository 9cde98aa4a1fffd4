"""The persons dataset: rows from the stage tables, hive partitions, self-describing metadata, DuckDB
queries over several frames, and the GigaCrowd frame made from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from schemas.layout import persons_file
from schemas.persons import PERSONS, file_metadata, read_metadata
from schemas.tables import detections_table, fixed_array, keypoints_table, smpl_table
from tasks.export import gigacrowd_frame, persons_table, read_persons, write_frame
from tests.conftest import smpl_of


def _tables(n: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    det = np.zeros((n, 7))
    det[:, :2] = rng.uniform(0, 500, (n, 2))
    det[:, 2:4] = det[:, :2] + rng.uniform(20, 200, (n, 2))
    det[:, 4] = rng.uniform(0.3, 1, n)
    r = {
        "pose": rng.normal(size=(n, 72)), "betas": rng.normal(size=(n, 10)),
        "transl": rng.normal(10, 0.3, (n, 3)),
        "cam": rng.normal(size=(n, 3)), "joints": rng.normal(size=(n, 24, 3)), "focal": np.full(n, 1500.0),
        "pp": np.array([640.0, 360.0]), "b": rng.uniform(50, 500, n), "centre": rng.uniform(0, 500, (n, 2)),
        "finetuned": True, "keypoint_error": rng.uniform(0, 1, n), "ground_distance": rng.normal(size=n),
    }  # fmt: skip
    kp = rng.uniform(0, 500, (n, 17, 3))
    ids = np.arange(n)
    smpl_t = smpl_table("f", smpl_of(r, ids))
    return detections_table("f", det), keypoints_table("f", ids, kp), smpl_t, det, kp, r


def test_rows_join_the_stage_tables() -> None:
    det_t, kp_t, smpl_t, det, kp, r = _tables(5, 0)
    t = persons_table(det_t, kp_t, smpl_t)
    assert t.schema.equals(PERSONS, check_metadata=False)
    np.testing.assert_allclose(fixed_array(t, "bbox", 4), det[:, :4], rtol=1e-6)
    np.testing.assert_allclose(fixed_array(t, "kp2d", 17, 3), kp, rtol=1e-6)
    np.testing.assert_allclose(fixed_array(t, "pelvis", 3), r["joints"][:, 0], rtol=1e-6)
    np.testing.assert_allclose(fixed_array(t, "body_pose", 69), r["pose"][:, 3:], rtol=1e-6)
    with pytest.raises(ValueError, match="det_ids"):
        persons_table(det_t, kp_t.slice(1), smpl_t)


def test_dataset_partitions_metadata_and_duckdb(tmp_path: Path) -> None:
    import duckdb

    ds = tmp_path / "persons"
    meta = file_metadata("builtin:neutral", "abc", "0.1.0", "h123", crowd_method="global")
    for frame, n in (("a", 3), ("b", 4)):
        det_t, kp_t, smpl_t, *_ = _tables(n, len(frame))
        write_frame(ds, "s1", frame, persons_table(det_t, kp_t, smpl_t), meta)
    path = persons_file(ds, "s1", "b")
    assert path == ds / "scene=s1" / "frame_id=b" / "part-0.parquet"
    doc = read_metadata(pq.read_schema(path))
    assert doc["camera"].startswith("OpenCV") and doc["num_betas"] == 10 and doc["config_hash"] == "h123"
    assert not [p for p in ds.rglob("*") if p.name.startswith(".tmp-")]
    table = read_persons(ds)
    assert len(table) == 7 and sorted(set(table.column("frame_id").to_pylist())) == ["a", "b"]
    rows = duckdb.sql(
        f"select frame_id, count(*) as n, min(focal) as f from read_parquet('{ds}/**/*.parquet', "
        "hive_partitioning=true) group by frame_id order by frame_id"
    ).fetchall()
    assert rows == [("a", 3, 1500.0), ("b", 4, 1500.0)]
    (depth,) = duckdb.sql(
        f"select avg(transl[3]) from read_parquet('{ds}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert 9 < depth[0] < 11  # SQL lists are 1-based: transl[3] is z


def test_gigacrowd_frame_from_rows() -> None:
    det_t, kp_t, smpl_t, _, _, r = _tables(4, 3)
    frame = gigacrowd_frame(persons_table(det_t, kp_t, smpl_t))
    a = frame.to_arrays()
    np.testing.assert_allclose(a.K, [[1500, 0, 640], [0, 1500, 360], [0, 0, 1]])
    np.testing.assert_allclose(a.pose, r["pose"], rtol=1e-6)
    np.testing.assert_allclose(a.trans_cam, r["transl"], rtol=1e-6)
    assert (a.scale_smpl == 1).all() and json.loads(frame.model_dump_json(by_alias=True))["person_list"][0][
        "gender"
    ] == "neutral"
