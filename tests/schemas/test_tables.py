"""Stage tables: Arrow contracts round-trip through Parquet, and a wrong table is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.tables import (
    DETECTIONS,
    KEYPOINTS,
    detections_array,
    detections_table,
    keypoints_array,
    keypoints_table,
    read_table,
    write_parquet,
)


def test_detections_and_keypoints_round_trip(tmp_path: Path) -> None:
    rows = np.array([[10.5, 20.25, 30, 80, 0.9, 0, 3, 0], [100, 50, 160, 300, 0.4, 2, 17, 1]])
    write_parquet(detections_table("f1", rows), tmp_path / "d.parquet")
    t = read_table(tmp_path / "d.parquet", DETECTIONS)
    np.testing.assert_allclose(detections_array(t), rows[:, :5].astype(np.float32))
    assert t.column("det_id").to_pylist() == [0, 1] and t.column("level").to_pylist() == [0, 2]
    kp = np.random.default_rng(0).uniform(0, 500, (2, 17, 3)).astype(np.float32)
    write_parquet(keypoints_table("f1", np.array([0, 1]), kp), tmp_path / "k.parquet")
    back = keypoints_array(read_table(tmp_path / "k.parquet", KEYPOINTS))
    np.testing.assert_array_equal(back, kp)
    assert back[1, 16, 0] == kp[1, 16, 0]  # joint 16 of person 1, x: no axis mix-up
    assert not list(tmp_path.glob(".tmp-*"))


def test_empty_tables_are_valid(tmp_path: Path) -> None:
    write_parquet(keypoints_table("f", np.zeros(0, int), np.zeros((0, 17, 3))), tmp_path / "k.parquet")
    assert keypoints_array(read_table(tmp_path / "k.parquet", KEYPOINTS)).shape == (0, 17, 3)


def test_a_table_of_another_contract_is_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1]}), tmp_path / "d.parquet")
    with pytest.raises(ValueError, match="do not match the detections contract"):
        read_table(tmp_path / "d.parquet", DETECTIONS)


def test_smpl_table_round_trips_with_its_metadata(tmp_path: Path) -> None:
    from schemas.tables import SMPL, fixed_array, read_smpl, smpl_table
    from tests.conftest import smpl_of

    rng = np.random.default_rng(0)
    n = 4
    r = {
        "pose": rng.normal(size=(n, 72)), "betas": rng.normal(size=(n, 10)),
        "transl": rng.normal(size=(n, 3)),
        "cam": rng.normal(size=(n, 3)), "joints": rng.normal(size=(n, 24, 3)), "focal": np.full(n, 1000.0),
        "pp": np.array([640.0, 360.0]), "b": rng.uniform(50, 500, n), "centre": rng.uniform(0, 500, (n, 2)),
        "finetuned": True, "keypoint_error": rng.uniform(0, 1, n), "ground_distance": rng.normal(size=n),
    }  # fmt: skip
    write_parquet(smpl_table("f", smpl_of(r, np.arange(n) + 3, {"regressor": "x"})), tmp_path / "s.parquet")
    t = read_table(tmp_path / "s.parquet", SMPL)
    assert t.schema.metadata[b"regressor"] == b"x" and b"camera" in t.schema.metadata
    assert t.column("det_id").to_pylist() == [3, 4, 5, 6]
    np.testing.assert_allclose(fixed_array(t, "global_orient", 3), r["pose"][:, :3], rtol=1e-6)
    np.testing.assert_allclose(fixed_array(t, "body_pose", 69), r["pose"][:, 3:], rtol=1e-6)
    np.testing.assert_allclose(fixed_array(t, "joints3d", 24, 3), r["joints"], rtol=1e-6)
    np.testing.assert_allclose(t.column("crop_y").to_numpy(), r["centre"][:, 1], rtol=1e-6)
    assert t.column("cx").to_pylist() == [640.0] * n and t.column("cy").to_pylist() == [360.0] * n
    assert t.column("finetuned").to_pylist() == [True] * n and t.column("scale").to_pylist() == [1.0] * n
    # and back into the record, every column by name, nested lists in their shapes
    back = read_smpl(tmp_path / "s.parquet")
    assert back.metadata["regressor"] == "x" and back.rows.joints3d.shape == (n, 24, 3)
    np.testing.assert_allclose(back.rows.joints3d[2, 15], r["joints"][2, 15], rtol=1e-6)
    np.testing.assert_allclose(back.rows.body_pose, r["pose"][:, 3:], rtol=1e-6)
    assert back.rows.det_id.tolist() == [3, 4, 5, 6] and back.rows.finetuned.dtype == bool


def test_the_contract_hash_follows_the_columns_not_their_descriptions() -> None:
    from schemas.tables import SMPL, contract_hash

    wider = SMPL.append(pa.field("extra", pa.float32(), nullable=False))
    assert contract_hash(wider) != contract_hash(SMPL)
    retyped = SMPL.set(SMPL.get_field_index("scale"), pa.field("scale", pa.float64(), nullable=False))
    assert contract_hash(retyped) != contract_hash(SMPL)
    assert contract_hash(SMPL.with_metadata({"contract": "smpl", "scale": "reworded"})) == contract_hash(SMPL)
