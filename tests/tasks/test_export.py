"""The persons dataset: rows from the stage tables, one file per frame, self-describing metadata, DuckDB
queries over several frames, and the GigaCrowd frame made from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main as cli_main
from schemas.layout import MANIFEST, PERSONS_DIR, persons_file
from schemas.persons import PERSONS, file_metadata, read_metadata
from schemas.predict import FramePrediction
from schemas.tables import detections_table, fixed_array, keypoints_table, smpl_table
from tasks import InputError
from tasks.export import (
    failed_frames,
    gigacrowd_frame,
    persons_table,
    read_persons,
    refit_frame,
    run_body,
    unit_scale_frame,
    write_frame,
)
from tasks.models.body import BUILTIN_NEUTRAL, NEUTRAL_SHA256, BodyModel
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
    t = persons_table(det_t, kp_t, smpl_t, "s1", "0007")
    assert t.schema.equals(PERSONS, check_metadata=False)
    assert t.column("frame_id").to_pylist() == ["0007"] * 5 and t.column("scene").to_pylist() == ["s1"] * 5
    np.testing.assert_allclose(fixed_array(t, "bbox", 4), det[:, :4], rtol=1e-6)
    np.testing.assert_allclose(fixed_array(t, "kp2d", 17, 3), kp, rtol=1e-6)
    np.testing.assert_allclose(fixed_array(t, "pelvis", 3), r["joints"][:, 0], rtol=1e-6)
    np.testing.assert_allclose(fixed_array(t, "body_pose", 69), r["pose"][:, 3:], rtol=1e-6)
    with pytest.raises(ValueError, match="det_ids"):
        persons_table(det_t, kp_t.slice(1), smpl_t, "s1", "0007")


def test_dataset_files_metadata_and_duckdb_pandas(tmp_path: Path) -> None:
    import duckdb
    import pandas as pd

    ds = tmp_path / "persons"
    meta = file_metadata("builtin:neutral", "abc", "0.1.0", "h123", crowd_method="global")
    for frame, n in (("a", 3), ("0002", 4)):
        det_t, kp_t, smpl_t, *_ = _tables(n, len(frame))
        write_frame(ds, frame, persons_table(det_t, kp_t, smpl_t, "s1", frame), meta)
    path = persons_file(ds, "0002")
    assert path == ds / "0002.parquet"
    doc = read_metadata(pq.read_schema(path))
    assert doc["camera"].startswith("OpenCV") and doc["num_betas"] == 10 and doc["config_hash"] == "h123"
    assert not [p for p in ds.rglob("*") if p.name.startswith(".tmp-")]
    table = read_persons(ds)
    assert len(table) == 7 and sorted(set(table.column("frame_id").to_pylist())) == ["0002", "a"]
    rows = duckdb.sql(
        f"select frame_id, count(*) as n, min(focal) as f from read_parquet('{ds}/*.parquet') "
        "group by frame_id order by frame_id"
    ).fetchall()
    assert rows == [("0002", 4, 1500.0), ("a", 3, 1500.0)]
    (depth,) = duckdb.sql(f"select avg(transl[3]) from read_parquet('{ds}/*.parquet')").fetchall()
    assert 9 < depth[0] < 11  # SQL lists are 1-based: transl[3] is z
    # pandas reads the directory as it is, the frame named 0002 a string, not the integer 2
    df = pd.read_parquet(ds)
    assert df.groupby("frame_id").size().to_dict() == {"0002": 4, "a": 3} and set(df["scene"]) == {"s1"}


def test_gigacrowd_frame_from_rows() -> None:
    det_t, kp_t, smpl_t, _, _, r = _tables(4, 3)
    frame = gigacrowd_frame(persons_table(det_t, kp_t, smpl_t, "s1", "f"))
    a = frame.to_arrays()
    np.testing.assert_allclose(a.K, [[1500, 0, 640], [0, 1500, 360], [0, 0, 1]])
    np.testing.assert_allclose(a.pose, r["pose"], rtol=1e-6)
    np.testing.assert_allclose(a.trans_cam, r["transl"], rtol=1e-6)
    assert (a.scale_smpl == 1).all() and json.loads(frame.model_dump_json(by_alias=True))["person_list"][0][
        "gender"
    ] == "neutral"


# ------------------------------------------------------------------------------------------------ the export


@pytest.fixture(scope="module")
def neutral() -> BodyModel:
    return BodyModel.load(BUILTIN_NEUTRAL)


def _rows(
    pose: np.ndarray, betas: np.ndarray, transl: np.ndarray, scale: np.ndarray, K: np.ndarray
) -> pa.Table:
    """Persons rows (no partition columns) holding these SMPL parameters, with the camera K."""
    n = len(pose)
    ids = np.arange(n)
    det = np.tile([10.0, 10.0, 60.0, 160.0, 0.9, 0.0, 0.0], (n, 1))
    r = {
        "pose": pose, "betas": betas, "transl": transl, "scale": scale, "cam": np.zeros((n, 3)),
        "joints": np.zeros((n, 24, 3)), "focal": np.full(n, K[0, 0]), "pp": K[:2, 2], "b": np.full(n, 150.0),
        "centre": np.zeros((n, 2)), "finetuned": True, "keypoint_error": np.zeros(n),
        "ground_distance": np.zeros(n),
    }  # fmt: skip
    kp = keypoints_table("f", ids, np.ones((n, 17, 3)))
    return persons_table(detections_table("f", det), kp, smpl_table("f", smpl_of(r, ids)), "s", "f")


def _as_frame(rows: pa.Table, frame: str) -> pa.Table:
    """`rows` as the rows of frame `frame` of scene s."""
    for name, value in (("scene", "s"), ("frame_id", frame)):
        i = rows.schema.get_field_index(name)
        rows = rows.set_column(i, rows.schema.field(i), pa.array([value] * len(rows), pa.string()))
    return rows


def _run(root: Path, frames: dict[str, pa.Table], status: dict[str, str] | None = None,
         body: tuple[str, str] = (BUILTIN_NEUTRAL, NEUTRAL_SHA256)) -> Path:  # fmt: skip
    """A run's scene directory `root/s` as pipeline/run.py leaves it: the persons rows of `frames`
    (frame -> rows, for the body `body` (name, sha256)), each frame's manifest naming its source
    `<frame>.jpg`, and, with `status`, the scene manifest giving each frame's latest status."""
    scene = root / "s"
    meta = file_metadata(body[0], body[1], "0.1.0", "h")
    for frame, rows in frames.items():
        write_frame(scene / PERSONS_DIR, frame, _as_frame(rows, frame), meta)
    for frame in {**frames, **(status or {})}:
        (scene / frame).mkdir(parents=True, exist_ok=True)
        doc = {"frame": frame, "source": f"/images/{frame}.jpg", "units": {}}
        (scene / frame / MANIFEST).write_text(json.dumps(doc))
    (scene / PERSONS_DIR).mkdir(parents=True, exist_ok=True)
    if status is not None:
        doc = {
            "scene": "s",
            "frames": {f: {"path": f"/images/{f}.jpg", "status": s} for f, s in status.items()},
        }
        (scene / MANIFEST).write_text(json.dumps(doc))
    return scene


def _people(n: int, seed: int) -> tuple[np.ndarray, ...]:
    """pose (n, 72), betas (n, 10), transl (n, 3) m 10-30 m ahead, scale (n,) around 1, K (3, 3)."""
    rng = np.random.default_rng(seed)
    transl = np.stack([rng.uniform(-4, 4, n), rng.uniform(-1, 2, n), rng.uniform(10, 30, n)], 1)
    K = np.array([[2000.0, 0, 1000], [0, 2000, 500], [0, 0, 1]])
    return rng.normal(0, 0.3, (n, 72)), rng.normal(0, 1, (n, 10)), transl, rng.uniform(0.85, 1.15, n), K


def test_refit_frame_keeps_the_pose_the_scale_and_the_pelvis(neutral: BodyModel, tmp_path: Path) -> None:
    from tests.tasks.models.test_refit import chain_bound, perturbed_body_file

    pose, betas, transl, scale, K = _people(30, 0)
    pred = FramePrediction.from_arrays(K, pose, betas, transl, scale)
    dst = BodyModel.load(perturbed_body_file(tmp_path / "other.pkl", widen=1.3))
    out, fit = refit_frame(pred, neutral, dst)
    a, b = pred.to_arrays(), out.to_arrays()
    assert np.array_equal(a.pose, b.pose) and np.array_equal(a.scale_smpl, b.scale_smpl)
    assert np.array_equal(a.K, b.K) and np.abs(a.shape - b.shape).max() > 0.3  # betas do change
    _, j_src, _ = neutral.numpy_forward(a.pose, a.shape, a.trans_cam, scale=a.scale_smpl)
    _, j_dst, _ = dst.numpy_forward(b.pose, b.shape, b.trans_cam, scale=b.scale_smpl)
    err = np.linalg.norm(j_dst - j_src, axis=-1)
    assert err[:, 0].max() < 1e-5  # the pelvis stays put, whatever the scale
    assert (err <= scale[:, None] * chain_bound(neutral, dst, a.shape, b.shape) + 1e-5).all()
    assert fit.residual_mm.shape == (30,) and (fit.residual_mm > 1).all()
    # the run's own body on both sides: nothing moves
    same, zero = refit_frame(pred, neutral, neutral)
    assert same == pred and not zero.residual_mm.any()


def test_unit_scale_keeps_every_torso_centre(neutral: BodyModel) -> None:
    from tasks.evaluate import predicted_points
    from tasks.models.body import body_fn

    pose, betas, transl, scale, K = _people(40, 1)
    pred = FramePrediction.from_arrays(K, pose, betas, transl, scale)
    one = unit_scale_frame(pred, neutral)
    assert (one.to_arrays().scale_smpl == 1).all()
    coco_a, torso_a = predicted_points(pred, body_fn(BUILTIN_NEUTRAL))
    coco_b, torso_b = predicted_points(one, body_fn(BUILTIN_NEUTRAL))
    np.testing.assert_allclose(torso_b, torso_a, atol=1e-5)
    assert np.array_equal(np.argsort(torso_b[:, 2]), np.argsort(torso_a[:, 2]))  # depth order
    # the bodies take their own size: a person scaled by s was s times their natural extent
    size = lambda c: np.linalg.norm(c - c.mean(1, keepdims=True), axis=-1).mean(1)  # noqa: E731
    np.testing.assert_allclose(size(coco_a) / size(coco_b), scale, rtol=1e-4)


def test_failed_frames_come_from_the_scene_manifest(tmp_path: Path) -> None:
    rows = _rows(*_people(3, 2))
    status = {"a": "ok", "b": "failed: detect: RuntimeError: boom", "c": "pending", "d": "failed: regress: x"}
    scene = _run(tmp_path, {"a": rows}, status)
    assert failed_frames(scene) == {"b": "detect: RuntimeError: boom", "d": "regress: x"}
    assert failed_frames(_run(tmp_path / "bare", {"a": rows})) == {}
    (scene / MANIFEST).write_text("{not json")
    with pytest.raises(InputError, match="not a scene manifest"):
        failed_frames(scene)


def test_run_body_is_the_one_the_rows_name(tmp_path: Path) -> None:
    rows = _rows(*_people(3, 3))
    assert run_body(_run(tmp_path / "ok", {"a": rows})).name == BUILTIN_NEUTRAL
    with pytest.raises(InputError, match="has changed since the run"):
        run_body(_run(tmp_path / "changed", {"a": rows}, body=(BUILTIN_NEUTRAL, "0" * 64)))
    two = _run(tmp_path / "two", {"a": rows})
    write_frame(
        two / PERSONS_DIR, "b", _as_frame(rows, "b"), file_metadata("/x/SMPL.pkl", "1" * 64, "0.1.0", "h")
    )
    with pytest.raises(InputError, match="2 body models"):
        run_body(two)
    assert run_body(two, exclude={"b"}).name == BUILTIN_NEUTRAL


def test_export_refuses_a_run_with_failed_frames_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _rows(*_people(4, 4))
    status = {"a": "ok", "b": "failed: crowd: ValueError: no people"}
    scene = _run(tmp_path, {"a": rows, "b": rows}, status)  # b's rows are stale: an earlier attempt's
    out = tmp_path / "predict.json"
    assert cli_main(["export", "gigacrowd", str(scene), "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "failed on 1 frame(s): 'b'" in err[0] and "--allow-failed" in err[0]
    assert not out.exists()
    assert cli_main(["export", "gigacrowd", str(scene), "--out", str(out), "--allow-failed"]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "warning: frame b failed in the latest run and is not exported: crowd: ValueError: no people"
    ]
    assert list(json.loads(out.read_text())) == ["a.jpg"] and "1 frame(s), 4 people" in captured.out
    # every frame failed: nothing is left to export
    only = _run(tmp_path / "all", {"b": rows}, {"b": "failed: detect: x"})
    args = ["export", "gigacrowd", str(only), "--out", str(tmp_path / "x.json"), "--allow-failed"]
    assert cli_main(args) == 2
    assert "no people outside the failed frames" in capsys.readouterr().err.splitlines()[-1]


def test_export_of_an_empty_dataset_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scene = _run(tmp_path, {}, {})
    out = tmp_path / "predict.json"
    assert cli_main(["export", "gigacrowd", str(scene), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"error: export: {scene}: the persons dataset holds no people; nothing to export"
    assert not out.exists()


def test_export_for_another_body_scores_as_the_run_body_on_400_people(
    neutral: BodyModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 400-person synthetic frame, predicted with noise (pose, betas, depth, scale) in the shipped
    body's shape space. Exported with --body OTHER (a second SMPL-format body: other shape directions,
    other proportions) and scored with --body OTHER, it scores what the default export scores with the
    shipped body; the betas read unchanged by OTHER score visibly worse. The run's persons rows are made
    from the truth's SMPL parameters (a whole pipeline run of 400 people takes minutes on 2 cores)."""
    from schemas.scene import SyntheticConfig
    from schemas.truth import write_truth
    from tasks.poses import load_bank
    from tasks.synth import Rendered, layout, truth
    from tests.tasks.models.test_refit import perturbed_body_file

    scene = layout(SyntheticConfig(people=400, width=8192, height=4096, seed=3), load_bank(), neutral)
    n = len(scene.pose)
    geometry = neutral.numpy_forward(scene.pose, scene.shape, scene.transl)
    gt = truth(scene, neutral, geometry, Rendered(np.ones(n), np.zeros((n, 17), bool)), "f.jpg")
    write_truth(gt, tmp_path / "truth.json")
    smpl = [p.smpl for p in gt.frame_info["f.jpg"]]
    pose, betas, transl = (np.array([getattr(s, k) for s in smpl]) for k in ("pose", "shape", "transl"))
    m, rng = len(pose), np.random.default_rng(0)
    pelvis = neutral.joints_numpy(pose, betas)[0][:, 0]  # raw, before transl
    scale = rng.uniform(0.9, 1.1, m)
    placed = (pelvis + transl) * rng.normal(1, 0.04, (m, 1)) - scale[:, None] * pelvis
    rows = _rows(pose + rng.normal(0, 0.08, pose.shape), betas + rng.normal(0, 0.3, betas.shape), placed,
                 scale, gt.arrays().K)  # fmt: skip
    run = _run(tmp_path, {"f": rows}, {"f": "ok"})
    other = str(perturbed_body_file(tmp_path / "other.pkl", widen=1.3))

    def score(export: list[str], body: str) -> float:
        pred, report = tmp_path / "predict.json", tmp_path / "report.json"
        assert cli_main(["export", "gigacrowd", str(run), "--out", str(pred), *export]) == 0
        gt_file = str(tmp_path / "truth.json")
        assert (
            cli_main(["evaluate", "--pred", str(pred), "--gt", gt_file, "--body", body, "--out", str(report)])
            == 0
        )
        return float(json.loads(report.read_text())["overall"]["score"])

    own = score([], BUILTIN_NEUTRAL)
    capsys.readouterr()
    refit = score(["--body", other], other)
    assert "betas refitted to" in capsys.readouterr().out
    naive = score([], other)
    assert abs(refit - own) < 0.01 and abs(naive - own) > 0.015, (own, refit, naive)
    doc = json.loads((tmp_path / "predict.refit.json").read_text())
    assert len(doc["frames"]["f.jpg"]) == m == doc["people"] and doc["target_body"]["name"] == other
    assert 1.0 < doc["median_rms_mm"] < doc["max_rms_mm"] < 15.0
    # the same with scale_smpl 1 on both sides
    assert (
        abs(score(["--body", other, "--scale", "one"], other) - score(["--scale", "one"], BUILTIN_NEUTRAL))
        < 0.01
    )
