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
