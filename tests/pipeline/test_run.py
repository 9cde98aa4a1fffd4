"""The scene graph end to end on a local Dask cluster: outputs, resume, failures, a killed unit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import pyvips
import yaml

import pipeline.run as run_module
from pipeline.config import load_scene, resolve
from pipeline.run import run_scene
from schemas.layout import (
    BIRDSEYE_FILE,
    CROWD_FILE,
    CROWD_REPORT,
    DETECTIONS_FILE,
    KEYPOINTS_FILE,
    MANIFEST,
    MESHES_FILE,
    OVERLAY_FILE,
    REPORT,
    SIDEVIEW_FILE,
    SMPL_FILE,
    STORE_NAME,
    SYNTHETIC_DIR,
    TRUTH_FILE,
)
from tasks.ingest import open_levels
from tasks.support import STATURE_PRIOR_M
from tests.conftest import DEMO_PHOTO, REPO, odd_crop, write_kind


def _scene(tmp_path: Path, frames: list[str], **extra: object) -> Path:
    doc = {
        "name": "t",
        "input": {"frames": frames},
        "output": "out",
        "cluster": {"n_workers": 2},
        "ingest": {"chunk": 128, "min_side": 100},
        **extra,
    }
    path = tmp_path / "scene.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _run(path: Path) -> run_module.RunSummary:
    return run_scene(resolve(load_scene(path), path))


@pytest.fixture()
def two_frames(tmp_path: Path, photo: pyvips.Image) -> list[Path]:
    return [
        write_kind(odd_crop(photo), "jpeg", tmp_path / "a.jpg"),
        write_kind(photo.crop(0, 0, 640, 480), "png", tmp_path / "b.png"),
    ]


def test_run_writes_pyramids_and_manifests_then_resumes(
    tmp_path: Path, two_frames: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    scene = _scene(tmp_path, ["a.jpg", "*.png"])
    summary = _run(scene)
    assert summary.ok and sorted(summary.done["ingest"]) == ["a", "b"]
    assert sorted(summary.done["detect"]) == ["a", "b"] and sorted(summary.done["pose2d"]) == ["a", "b"]
    assert sorted(summary.done["regress"]) == ["a", "b"] and sorted(summary.done["crowd"]) == ["a", "b"]
    assert sorted(summary.done["write"]) == ["a", "b"]
    levels = open_levels(tmp_path / "out" / "t" / "a" / STORE_NAME)
    assert levels[0].shape == (597, 1001, 3)
    np.testing.assert_array_equal(levels[0][:], pyvips.Image.new_from_file(str(two_frames[0])).numpy())
    import json

    scene_manifest = json.loads((tmp_path / "out" / "t" / MANIFEST).read_text())
    assert (
        scene_manifest["frames"]["a"]["status"] == "ok" and scene_manifest["config"]["ingest"]["chunk"] == 128
    )
    assert "zarr" in scene_manifest["versions"] and scene_manifest["finished"]
    frame_manifest = json.loads((tmp_path / "out" / "t" / "a" / MANIFEST).read_text())
    assert len(frame_manifest["units"]["ingest/frame"]["input_sha256"]) == 64

    # A rerun does no work: it must not even start a cluster.
    def no_cluster(*a: object, **k: object) -> None:
        raise AssertionError("a cluster was started for a run with nothing to do")

    monkeypatch.setattr(run_module, "open_client", no_cluster)
    again = _run(scene)
    assert again.done == {} and sorted(again.skipped["ingest"]) == ["a", "b"]
    assert sorted(again.skipped["pose2d"]) == ["a", "b"] and sorted(again.skipped["crowd"]) == ["a", "b"]
    monkeypatch.undo()

    # Touching a file (same bytes) re-hashes it and keeps the store and what was made from it.
    os.utime(two_frames[0], ns=(time.time_ns(), time.time_ns() + 10**9))
    store_mtime = (tmp_path / "out" / "t" / "a" / STORE_NAME / "zarr.json").stat().st_mtime_ns
    touched = _run(scene)
    assert touched.done == {"ingest": ["a"]} and touched.skipped["detect"] == ["a", "b"]
    assert (tmp_path / "out" / "t" / "a" / STORE_NAME / "zarr.json").stat().st_mtime_ns == store_mtime
    # New ingest settings rebuild the stores, and every later stage reruns on them.
    _scene(tmp_path, ["a.jpg", "*.png"], **{"ingest": {"chunk": 256, "min_side": 100}})
    rebuilt = _run(scene)
    assert sorted(rebuilt.done["ingest"]) == ["a", "b"] and sorted(rebuilt.done["pose2d"]) == ["a", "b"]
    assert sorted(rebuilt.done["crowd"]) == ["a", "b"]
    # New pose settings rerun pose2d and what is made from its keypoints.
    _scene(
        tmp_path,
        ["a.jpg", "*.png"],
        **{"ingest": {"chunk": 256, "min_side": 100}, "pose2d": {"crop_scale": 1.3}},
    )
    posed = _run(scene)
    assert list(posed.done) == ["pose2d", "regress", "crowd", "write"] and sorted(
        posed.skipped["detect"]
    ) == [
        "a",
        "b",
    ]
    # New crowd settings rerun the reduce step only.
    _scene(
        tmp_path,
        ["a.jpg", "*.png"],
        **{
            "ingest": {"chunk": 256, "min_side": 100},
            "pose2d": {"crop_scale": 1.3},
            "crowd": {"global": {"lr": 2e-4}},
        },
    )
    assert list(_run(scene).done) == ["crowd", "write"]
    assert open_levels(tmp_path / "out" / "t" / "a" / STORE_NAME)[0].chunks == (256, 256, 3)
    # A column added to the smpl contract remakes the smpl tables and what is made from them: the
    # resume key holds the contract's columns (here only the driver sees the wider contract).
    import pyarrow as pa

    wider = run_module.SMPL.append(pa.field("extra", pa.float32(), nullable=False))
    monkeypatch.setattr(run_module, "SMPL", wider)
    assert list(_run(scene).done) == ["regress", "crowd", "write"]


def test_a_corrupt_frame_fails_alone(tmp_path: Path, two_frames: list[Path]) -> None:
    good = two_frames[0].read_bytes()
    (tmp_path / "c.jpg").write_bytes(good[: len(good) // 3])
    summary = _run(_scene(tmp_path, ["a.jpg", "c.jpg"]))
    assert summary.done["ingest"] == ["a"] and list(summary.failed) == ["c"]
    assert "truncated" in summary.failed["c"]
    page = (tmp_path / "out" / "t" / REPORT).read_text()
    assert "<h2>c <small>(failed: " in page and "<h2>a <small>(ok)</small></h2>" in page
    frame_dir = tmp_path / "out" / "t" / "c"
    assert not (frame_dir / STORE_NAME).exists()
    assert not [p for p in frame_dir.rglob("*") if p.name.startswith(".tmp-")]
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(tmp_path / "scene.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "FAILED frame c:" in proc.stderr and "Traceback" not in proc.stderr
    assert "6 already complete" in proc.stdout  # a was not redone (ingest ... write)


def test_persons_mirror_the_scenes_frames_and_their_latest_attempt(
    tmp_path: Path, two_frames: list[Path]
) -> None:
    import pandas as pd

    from schemas.layout import PERSONS_DIR
    from tasks.export import read_persons

    two_frames[0].rename(tmp_path / "0001.jpg")  # a name pandas would read back as the integer 1
    scene = _scene(tmp_path, ["0001.jpg", "b.png"])
    first = _run(scene)
    persons = tmp_path / "out" / "t" / PERSONS_DIR
    assert first.ok and sorted(p.name for p in persons.iterdir()) == ["0001.parquet", "b.parquet"]
    df = pd.read_parquet(persons)  # the dataset as an analyst reads it: frame_id stays a string
    assert sorted(set(df["frame_id"])) == ["0001", "b"] and set(df["scene"]) == {"t"}
    people = df.groupby("frame_id").size().to_dict()
    assert min(people.values()) >= 1

    # The frame leaves the scene: its rows leave the dataset, and the run says so.
    _scene(tmp_path, ["0001.jpg"])
    dropped = _run(scene)
    assert dropped.done == {} and dropped.removed == {"b": "no longer in the scene"}
    table = read_persons(persons)
    assert set(table.column("frame_id").to_pylist()) == {"0001"} and len(table) == people["0001"]

    # b is back and 0001's file is truncated: 0001 fails and its rows go, b's rows are written again
    # (only its write reruns); the report keeps the earlier passes; export refuses the failed frame.
    _scene(tmp_path, ["0001.jpg", "b.png"])
    good = (tmp_path / "0001.jpg").read_bytes()
    (tmp_path / "0001.jpg").write_bytes(good[: len(good) // 3])
    broken = _run(scene)
    assert list(broken.failed) == ["0001"] and "its latest attempt failed" in broken.removed["0001"]
    assert broken.done == {"write": ["b"]} and sorted(p.name for p in persons.iterdir()) == ["b.parquet"]
    manifest = json.loads((tmp_path / "out" / "t" / MANIFEST).read_text())
    assert [len(p["ran"]) > 0 for p in manifest["passes"]] == [True, False, True]
    page = (tmp_path / "out" / "t" / REPORT).read_text()
    assert "0001 rows removed: its latest attempt failed" in page and "b rows removed" in page
    export = [sys.executable, "-m", "pipeline", "export", "gigacrowd", str(tmp_path / "out" / "t"), "--out"]
    refused = subprocess.run([*export, str(tmp_path / "p.json")], cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 2 and "'0001'" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert not (tmp_path / "p.json").exists()
    allowed = subprocess.run([*export, str(tmp_path / "p.json"), "--allow-failed"], cwd=REPO,
                             capture_output=True, text=True)  # fmt: skip
    assert allowed.returncode == 0 and "frame 0001 failed" in allowed.stderr
    assert list(json.loads((tmp_path / "p.json").read_text())) == ["b.png"]
    _scene(tmp_path, ["0001.jpg"])
    # Repaired: it is made again (every stage: its store was built from other bytes).
    (tmp_path / "0001.jpg").write_bytes(good)
    repaired = _run(scene)
    assert repaired.ok and repaired.done["write"] == ["0001"] and len(read_persons(persons)) == people["0001"]
    # A rerun with nothing to do keeps the numbers of the pass that made the results.
    _run(scene)
    page = (tmp_path / "out" / "t" / REPORT).read_text()
    assert "nothing to do" in page and "the last that did work started" in page
    assert "fan-out tasks included" in page


def test_an_rgba_frame_is_ingested_with_a_warning_naming_the_compositing(
    tmp_path: Path, photo: pyvips.Image, caplog: pytest.LogCaptureFixture
) -> None:
    write_kind(photo.crop(0, 0, 320, 240), "rgba-png", tmp_path / "rgba.png")
    with caplog.at_level("WARNING", logger="pipeline"):
        summary = _run(_scene(tmp_path, ["rgba.png"], detect={"enabled": False}))
    assert summary.ok and summary.done == {"ingest": ["rgba"]}
    warned = [r.getMessage() for r in caplog.records if "converted" in r.getMessage()]
    assert warned == ["ingest: frame rgba converted: alpha composited over black"]


def test_a_unit_killed_mid_write_leaves_nothing_partial(tmp_path: Path, photo: pyvips.Image) -> None:
    big = photo.resize(6.0)  # 6696 x 3600: a few seconds of ingest at zstd level 9
    src = write_kind(big, "jpeg", tmp_path / "big.jpg")
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "ingest",
        str(src),
        "--out",
        str(out),
        "--chunk",
        "256",
        "--compressor",
        "zstd",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    frame_dir = out / "big"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        tmps = list(frame_dir.glob(".tmp-image.zarr-*")) if frame_dir.exists() else []
        if tmps and any((tmps[0] / "0" / "c").rglob("*")):  # chunks are being written
            break
        time.sleep(0.005)
    assert proc.poll() is None, "ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (frame_dir / STORE_NAME).exists()
    assert list(frame_dir.glob(".tmp-*"))  # the partial store sits under a temporary name only
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in frame_dir.iterdir()) == [STORE_NAME, MANIFEST]
    assert open_levels(frame_dir / STORE_NAME)[0].shape == (3600, 6696, 3)
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_photo_scene_runs_from_a_copy(tmp_path: Path) -> None:
    shutil.copytree(REPO / "scenes", tmp_path / "scenes")
    cmd = [sys.executable, "-m", "pipeline", "run", str(tmp_path / "scenes" / "photo.yaml")]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # the dashboard's link only when bokeh can serve it; no stray native lines between the log's
    import importlib.util

    assert ("Dask dashboard: http" in proc.stderr) == (importlib.util.find_spec("bokeh") is not None)
    assert all(" INFO " in ln or " WARNING " in ln for ln in proc.stderr.splitlines()), proc.stderr
    frame = tmp_path / "runs" / "photo" / DEMO_PHOTO.stem
    shapes = [lv.shape for lv in open_levels(frame / STORE_NAME)]
    assert shapes == [(600, 1116, 3), (300, 558, 3), (150, 279, 3)]
    from schemas.tables import DETECTIONS, KEYPOINTS, detections_array, keypoints_array, read_table

    boxes = detections_array(read_table(frame / DETECTIONS_FILE, DETECTIONS))
    kp = keypoints_array(read_table(frame / KEYPOINTS_FILE, KEYPOINTS))
    # The photograph's pedestrian on the left (torso near (230, 320)) is found and posed: his head
    # keypoints lie above his hips, and inside his box.
    hit = np.flatnonzero(
        (boxes[:, 0] < 230) & (boxes[:, 2] > 230) & (boxes[:, 1] < 320) & (boxes[:, 3] > 320)
    )
    assert len(boxes) >= 5 and len(kp) == len(boxes) and len(hit) >= 1
    p = kp[hit[0]]
    assert p[0, 1] < p[11, 1] and p[0, 1] < p[12, 1] and (p[:, 2] > 0.3).sum() >= 12
    b = boxes[hit[0]]
    assert (
        (p[:, 0] > b[0] - 10) & (p[:, 0] < b[2] + 10) & (p[:, 1] > b[1] - 10) & (p[:, 1] < b[3] + 10)
    ).all()
    picture = pyvips.Image.new_from_file(str(frame / OVERLAY_FILE)).numpy()
    assert picture.shape == (600, 1116, 3)
    changed = np.abs(picture.astype(int) - open_levels(frame / STORE_NAME)[0][:].astype(int)).max(2) > 40
    assert 0.005 < changed.mean() < 0.2  # boxes and skeletons drawn, the photograph still there
    _check_smpl(frame, boxes, hit[0])
    _check_crowd(frame, len(boxes))
    for name, shape in ((BIRDSEYE_FILE, (1024, 1024, 3)), (SIDEVIEW_FILE, (512, 1024, 3))):
        view = pyvips.Image.new_from_file(str(frame / name)).numpy()
        assert view.shape == shape
        dots = (view.max(2).astype(int) - view.min(2)) > 100  # people drawn in colour on grey and white
        assert dots.sum() > 50, name
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def _check_smpl(frame: Path, boxes: np.ndarray, person: int) -> None:
    """smpl.parquet has a plausible body for every detection; `person` (upright, walking) is placed
    where his box is; meshes.png shows bodies over the photograph."""
    from schemas.tables import SMPL, fixed_array, read_table

    table = read_table(frame / SMPL_FILE, SMPL)
    assert table.column("det_id").to_pylist() == list(range(len(boxes)))
    assert table.schema.metadata[b"regressor"].startswith(b"embedded:")
    joints = fixed_array(table, "joints3d", 24, 3)
    transl = fixed_array(table, "transl", 3)
    focal, cx, cy = (table.column(c).to_numpy() for c in ("focal", "cx", "cy"))
    assert focal[0] == pytest.approx(np.hypot(1116, 600)) and (cx[0], cy[0]) == (558, 300)
    assert np.isfinite(joints).all() and (transl[:, 2] > 0).all()
    j = joints[person]
    assert j[15, 1] < j[0, 1] < j[7, 1]  # head above pelvis above the ankle (y down)
    pelvis = focal[0] * j[0, :2] / j[0, 2] + (cx[0], cy[0])
    b = boxes[person]
    assert b[0] < pelvis[0] < b[2] and b[1] < pelvis[1] < b[3]
    height = float(np.linalg.norm(j[15] - (j[7] + j[8]) / 2))
    assert 1.0 < height < 2.0  # metres, ankle to head
    picture = pyvips.Image.new_from_file(str(frame / MESHES_FILE)).numpy()
    changed = np.abs(picture.astype(int) - open_levels(frame / STORE_NAME)[0][:].astype(int)).max(2) > 40
    assert 0.01 < changed.mean() < 0.3


def _check_crowd(frame: Path, people: int) -> None:
    """The reduce step ran on the frame: a ground plane whose up points up in the image, a falling loss,
    and the finetuned people in the smpl contract."""
    import json

    from schemas.tables import SMPL, read_table

    report = json.loads((frame / CROWD_REPORT).read_text())
    assert report["method"] == "global" and report["people"] == people
    assert report["ground_normal"] == "people (fitted to the finetuned feet)"  # the diagonal focal
    assert report["ground_offset"] == "first"  # the camera's height from the network's first prediction
    normal = np.array(report["ground_plane"][:3])
    assert abs(np.linalg.norm(normal) - 1) < 1e-5 and normal[1] < -0.7  # y down: up is -y
    curve = report["loss_curve"]
    assert len(curve) >= 30 and curve[-1] < 0.8 * curve[0]
    assert report["evaluations"] == 2 * people + len(curve) * people + (len(curve) - 1) // 50 * people
    table = read_table(frame / CROWD_FILE, SMPL)
    assert len(table) == people and table.schema.metadata[b"crowd_method"] == b"global"
    before = read_table(frame / SMPL_FILE, SMPL)
    assert not any(before.column("finetuned").to_pylist()) and all(table.column("finetuned").to_pylist())
    # the step fits the keypoints better and brings the feet closer to one plane
    err = [np.median(t.column("keypoint_error").to_numpy()) for t in (before, table)]
    assert err[1] < err[0]
    spread = report["feet_spread_m"]
    assert spread["finetuned"] < spread["before"]  # the finetune itself, before the snap
    # the snap stood the people on a level on it, every stature within the prior
    plaus = report["plausibility"]
    assert plaus["on_a_level"] >= people // 2 and plaus["on_level_within_m"]["0.1"] == 1.0
    stature = table.column("stature").to_numpy()
    assert (stature >= STATURE_PRIOR_M[0] - 1e-4).all() and (stature <= STATURE_PRIOR_M[1] + 1e-4).all()
    support = table.column("support").to_numpy(zero_copy_only=False)
    assert set(support) <= {"floor", "level_2", "not_standing", "off_floor"}
    assert set(before.column("support").to_numpy(zero_copy_only=False)) == {"not_judged"}
    scale = table.column("scale").to_numpy()
    lo, mid, hi = report["scale_percentiles_5_50_95"]
    assert np.median(scale) == pytest.approx(mid, rel=1e-3) and lo <= mid <= hi
    assert np.ptp(scale) > 1e-3 and np.all(before.column("scale").to_numpy() == 1)


def test_cliff_backend_runs_an_official_layout_checkpoint(tmp_path: Path) -> None:
    import torch

    from schemas.tables import SMPL, fixed_array, read_table
    from tasks.models.cliff import Cliff, save_official

    torch.manual_seed(0)
    save_official(Cliff("res50"), tmp_path / "cliff.pt")  # untrained: near its mean parameters
    shutil.copy(DEMO_PHOTO, tmp_path / "p.jpg")
    regress = {"backend": "cliff", "model": "cliff.pt", "device": "cpu", "meshes": False}
    # the reduce step finetunes CLIFF itself (a few global steps: a ResNet-50 is slow on 2 cores)
    crowd = {"global": {"steps": 2, "refresh": 1}}
    camera = {"focal": 1300}  # given: the plane's direction would come from the image, if enough people
    scene = _scene(
        tmp_path, ["p.jpg"], regress=regress, pose2d={"overlay": False}, crowd=crowd, camera=camera
    )
    assert _run(scene).ok
    report = json.loads((tmp_path / "out" / "t" / "p" / CROWD_REPORT).read_text())
    assert report["iterations"] == 2 and len(report["ground_plane"]) == 4
    assert report["camera"]["focal"] == 1300 and report["camera"]["focal_source"] == "given"
    assert report["ground_normal"] == "people (the keypoints do not determine the camera)"
    after = read_table(tmp_path / "out" / "t" / "p" / CROWD_FILE, SMPL)
    assert after.schema.metadata[b"regressor"] == f"cliff:{tmp_path / 'cliff.pt'}".encode()
    table = read_table(tmp_path / "out" / "t" / "p" / SMPL_FILE, SMPL)
    assert table.schema.metadata[b"regressor"] == f"cliff:{tmp_path / 'cliff.pt'}".encode()
    cam = fixed_array(table, "cam_crop", 3)
    assert len(table) >= 5 and np.isfinite(cam).all()
    # The stage's crops are CLIFF's crops of the full-resolution photograph: the same network on
    # crops cut here from the decoded file gives the same cameras.
    from schemas.tables import DETECTIONS, detections_array
    from tasks.models.cliff import load_cliff
    from tasks.pose2d import crop
    from tasks.regress import CROP_RESCALE, CROP_SIZE, bbox_info, crop_params, normalise_crops

    boxes = detections_array(read_table(tmp_path / "out" / "t" / "p" / DETECTIONS_FILE, DETECTIONS))[:, :4]
    image = pyvips.Image.new_from_file(str(DEMO_PHOTO)).numpy()
    crops = np.stack([crop(image, bx, CROP_SIZE, CROP_RESCALE)[0] for bx in boxes])
    centre, b = crop_params(boxes)
    n = len(boxes)
    info = bbox_info(
        torch.tensor(centre).float(), torch.tensor(b).float(), torch.full((n,), float(np.hypot(1116, 600))),
        torch.tensor([[558.0, 300.0]]).expand(n, 2),
    )  # fmt: skip
    with torch.no_grad():
        _, _, direct = load_cliff(tmp_path / "cliff.pt")(normalise_crops(crops), info)
    np.testing.assert_allclose(cam, direct.numpy(), atol=2e-3)
    assert np.ptp(cam[:, 0]) > 1e-3  # it looked at each person's own crop


def test_image_mode_embedded_regressor_reads_each_persons_crop(tmp_path: Path) -> None:
    import torch

    from schemas.tables import (
        DETECTIONS,
        KEYPOINTS,
        SMPL,
        detections_array,
        fixed_array,
        keypoints_array,
        read_table,
    )
    from tasks.models.embedded import BUILTIN_KP
    from tasks.pose2d import crop
    from tasks.regress import CROP_RESCALE, CROP_SIZE, box_inputs, normalise_crops
    from tasks.train_regressor import TrainConfig, make_model

    torch.manual_seed(0)
    model = make_model(TrainConfig(mode="image", init=BUILTIN_KP))
    with torch.no_grad():  # an image path that matters (it starts at zero)
        model.project[2].weight.normal_(0, 0.05)
    torch.save(model.state_dict(), tmp_path / "img.pt")
    shutil.copy(DEMO_PHOTO, tmp_path / "p.jpg")
    regress = {"model": "img.pt", "meshes": False}
    crowd = {"global": {"steps": 2, "refresh": 1}}
    camera = {"focal": "estimate"}  # 9 people do not determine it: the diagonal, and the run says so
    scene = _scene(
        tmp_path, ["p.jpg"], regress=regress, pose2d={"overlay": False}, crowd=crowd, camera=camera
    )
    assert _run(scene).ok
    frame = tmp_path / "out" / "t" / "p"
    report = json.loads((frame / CROWD_REPORT).read_text())
    assert report["iterations"] == 2
    assert report["camera"]["focal_source"] == "diagonal (not determined by the people)"
    assert report["ground_normal"] == "people (fitted to the finetuned feet)"
    assert report["camera"]["estimate"] is None and report["camera"]["focal"] == pytest.approx(
        np.hypot(1116, 600)
    )
    table = read_table(frame / SMPL_FILE, SMPL)
    assert table.schema.metadata[b"regressor"] == f"embedded:{tmp_path / 'img.pt'}".encode()
    assert len(read_table(frame / CROWD_FILE, SMPL)) == len(table) >= 5
    # the same network on crops cut here from the decoded photograph gives the same cameras
    boxes = detections_array(read_table(frame / DETECTIONS_FILE, DETECTIONS))[:, :4]
    kp = keypoints_array(read_table(frame / KEYPOINTS_FILE, KEYPOINTS))
    image = pyvips.Image.new_from_file(str(DEMO_PHOTO)).numpy()
    crops = np.stack([crop(image, bx, CROP_SIZE, CROP_RESCALE)[0] for bx in boxes])
    x = box_inputs(boxes, kp, float(np.hypot(1116, 600)), (558.0, 300.0))
    model.eval()
    with torch.no_grad():
        _, _, direct = model.predict(normalise_crops(crops), x.keypoints, x.info, x.b)
        _, _, blind = model.predict(torch.zeros(len(boxes), 3, 256, 192), x.keypoints, x.info, x.b)
    cam = fixed_array(table, "cam_crop", 3)
    np.testing.assert_allclose(cam, direct.numpy(), atol=2e-3)
    assert np.abs(cam - blind.numpy()).max() > 1e-2  # the crops changed the answer


def test_synthetic_scene_is_generated_once_and_cached(tmp_path: Path) -> None:
    scene = tmp_path / "synth.yaml"
    scene.write_text(
        "input:\n  synthetic: {people: 12, width: 640, height: 320, seed: 5, frames: 2}\n"
        "output: out\ncluster: {n_workers: 1}\n"
    )
    cmd = [sys.executable, "-m", "pipeline", "run", str(scene)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    made = sorted((tmp_path / "out" / SYNTHETIC_DIR).glob("*/seed*/*"))
    assert [p.name for p in made] == [
        "synth-seed5_000000.jpg", TRUTH_FILE, "synth-seed6_000000.jpg", TRUTH_FILE
    ]  # fmt: skip
    for name in ("synth-seed5_000000", "synth-seed6_000000"):
        assert open_levels(tmp_path / "out" / "synth" / name / STORE_NAME)[0].shape == (320, 640, 3)
    stamps = [p.stat().st_mtime_ns for p in made]
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert [p.stat().st_mtime_ns for p in made] == stamps  # cached, not regenerated
    # A changed rendering setting makes new frames beside the old ones.
    scene.write_text(scene.read_text().replace("people: 12", "people: 13"))
    third = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert len(list((tmp_path / "out" / SYNTHETIC_DIR).iterdir())) == 2


def test_boxes_and_keypoints_imported_from_a_file(tmp_path: Path) -> None:
    from schemas.tables import DETECTIONS, KEYPOINTS, detections_array, keypoints_array, read_table
    from tests.conftest import COCO_PHOTO

    shutil.copy(COCO_PHOTO, tmp_path / COCO_PHOTO.name)
    shutil.copy(COCO_PHOTO.with_suffix(".json"), tmp_path / "ann.json")
    ann = yaml.safe_load(COCO_PHOTO.with_suffix(".json").read_text())["annotations"][0]
    x, y, w, h = ann["bbox"]
    detect = {"backend": "file", "file": "ann.json", "file_format": "coco-results"}
    scene = _scene(tmp_path, [COCO_PHOTO.name], detect=detect, pose2d={"backend": "file"})
    summary = _run(scene)
    assert summary.ok, summary.failed
    frame = tmp_path / "out" / "t" / COCO_PHOTO.stem
    boxes = detections_array(read_table(frame / DETECTIONS_FILE, DETECTIONS))
    np.testing.assert_allclose(boxes, [[x, y, x + w, y + h, 1.0]], rtol=1e-6)
    kp = keypoints_array(read_table(frame / KEYPOINTS_FILE, KEYPOINTS))
    np.testing.assert_allclose(kp[0, :, :2], np.reshape(ann["keypoints"], (17, 3))[:, :2], rtol=1e-6)
    # The same boxes with MoveNet for the keypoints.
    _scene(tmp_path, [COCO_PHOTO.name], detect=detect, pose2d={"backend": "movenet"})
    again = _run(scene)
    assert again.done == {stage: [COCO_PHOTO.stem] for stage in ("pose2d", "regress", "crowd", "write")}


def test_a_frame_missing_from_the_detections_file_fails_alone(tmp_path: Path, two_frames: list[Path]) -> None:
    (tmp_path / "dets.json").write_text(
        '[{"image_id": "a.jpg", "category_id": 1, "bbox": [10, 10, 50, 200], "score": 0.9}]'
    )
    detect = {"backend": "file", "file": "dets.json"}
    summary = _run(_scene(tmp_path, ["a.jpg", "b.png"], detect=detect))
    assert summary.done["pose2d"] == ["a"] and list(summary.failed) == ["b"]
    assert "frame 'b' is not in the detections file" in summary.failed["b"]


def test_pytorch_yolox_backend_finds_what_the_onnx_backend_finds(
    tmp_path: Path, yolox_checkpoint: Path
) -> None:
    from schemas.tables import DETECTIONS, detections_array, read_table

    shutil.copy(DEMO_PHOTO, tmp_path / "p.jpg")
    found = {}
    for backend, model in (("yolox-onnx", "builtin:yolox-nano-dynamic"), ("yolox", str(yolox_checkpoint))):
        detect = {"backend": backend, "model": model, "device": "cpu"}
        scene = _scene(tmp_path, ["p.jpg"], detect=detect, pose2d={"enabled": False}, output=backend)
        assert _run(scene).ok
        found[backend] = detections_array(
            read_table(tmp_path / backend / "t" / "p" / DETECTIONS_FILE, DETECTIONS)
        )
    assert len(found["yolox"]) == len(found["yolox-onnx"]) >= 5
    np.testing.assert_allclose(found["yolox"], found["yolox-onnx"], atol=0.05)


def test_blazepose_backend_poses_the_pedestrian(tmp_path: Path) -> None:
    from schemas.tables import DETECTIONS, KEYPOINTS, detections_array, keypoints_array, read_table

    shutil.copy(DEMO_PHOTO, tmp_path / "p.jpg")
    assert _run(_scene(tmp_path, ["p.jpg"], pose2d={"backend": "blazepose", "overlay": False})).ok
    frame = tmp_path / "out" / "t" / "p"
    boxes = detections_array(read_table(frame / DETECTIONS_FILE, DETECTIONS))
    kp = keypoints_array(read_table(frame / KEYPOINTS_FILE, KEYPOINTS))
    i = np.flatnonzero((boxes[:, 0] < 230) & (boxes[:, 2] > 230) & (boxes[:, 1] < 320) & (boxes[:, 3] > 320))[
        0
    ]
    assert kp[i, 0, 1] < kp[i, 11, 1] < kp[i, 15, 1]  # nose above the hip above the ankle
    assert not (frame / OVERLAY_FILE).exists()


def test_another_scene_file_cannot_take_over_a_runs_directory(tmp_path: Path, two_frames: list[Path]) -> None:
    from pipeline.config import ConfigError

    scene = _scene(tmp_path, ["a.jpg"], detect={"enabled": False})
    assert _run(scene).ok
    other = tmp_path / "other.yaml"
    other.write_text(scene.read_text())  # same name and output, another file
    with pytest.raises(ConfigError, match=r"holds the run of .*scene\.yaml"):
        _run(other)
    assert _run(scene).ok  # its own scene file resumes as before


def test_ground_plane_pruning_skips_tiles_and_finds_the_same_people(tmp_path: Path) -> None:
    from schemas.tables import DETECTIONS, detections_array, read_table
    from tasks.boxes import greedy_recall_match

    doc = {
        "name": "prune",
        "input": {"synthetic": {"people": 300, "width": 8192, "height": 4096, "seed": 2}},
        "output": "out",
        "cluster": {"n_workers": 2},
        "pose2d": {"enabled": False},
    }
    scene = tmp_path / "prune.yaml"
    found = {}
    for prune in ("ground", "off"):
        scene.write_text(yaml.safe_dump({**doc, "detect": {"prune": prune}}))
        assert _run(scene).ok
        frame = tmp_path / "out" / "prune" / "synth-seed2_000000"
        info = json.loads((frame / MANIFEST).read_text())["units"]["detect/frame"]["info"]
        found[prune] = (info, detections_array(read_table(frame / DETECTIONS_FILE, DETECTIONS)))
    pruned, every = found["ground"][0], found["off"][0]
    # Near people (up to ~540 px) stand low in the frame: finer tiles there are skipped.
    assert pruned["prior"] is not None and pruned["prior"]["a"] > 0 and pruned["why"] == ""
    assert every["tiles"] == every["planned_tiles"] == pruned["planned_tiles"]
    assert pruned["tiles"] < 0.8 * pruned["planned_tiles"], pruned
    a, b = found["ground"][1], found["off"][1]
    assert abs(len(a) - len(b)) <= 2
    assert (greedy_recall_match(a[:, :4], b[:, :4]) >= 0).mean() >= 0.98
