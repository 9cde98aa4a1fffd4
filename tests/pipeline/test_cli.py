"""`python -m pipeline` as a user runs it: exit codes, one-line errors, nothing half-written left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from schemas.layout import PERSONS_DIR, REPORT, STORE_NAME, TRUTH_FILE

ROOT = Path(__file__).resolve().parents[2]
DEMO_IMAGE = ROOT / "scenes" / "images" / "17790319373_bd19b24cfc_k.jpg"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_help() -> None:
    r = cli("--help")
    assert r.returncode == EXIT_OK, r.stderr
    assert r.stdout.startswith("usage: python -m pipeline")
    for command in ("run", "validate", "ingest"):
        assert command in r.stdout


@pytest.mark.parametrize(
    ("command", "expected"), [("run", "--workers"), ("validate", "--output"), ("ingest", "--chunk")]
)
def test_subcommand_help(command: str, expected: str) -> None:
    r = cli(command, "--help")
    assert r.returncode == EXIT_OK, r.stderr
    assert r.stdout.startswith(f"usage: python -m pipeline {command}")
    assert expected in r.stdout


def test_unknown_subcommand() -> None:
    r = cli("bogus")
    assert r.returncode == EXIT_USAGE
    assert "invalid choice: 'bogus'" in r.stderr
    assert r.stdout == ""


def test_no_subcommand() -> None:
    r = cli()
    assert r.returncode == EXIT_USAGE
    assert "usage:" in r.stderr


def test_validate_misspelt_key(tmp_path: Path) -> None:
    scene = tmp_path / "s.yaml"
    scene.write_text(f"input:\n  frames: {DEMO_IMAGE}\ningest:\n  chunck: 512\n")
    r = cli("validate", scene)
    assert r.returncode == EXIT_USAGE
    line = one_line(r.stderr)
    assert line.startswith(f"error: {scene}: ingest.chunck: unknown key")
    assert "did you mean 'chunk'?" in line
    assert r.stdout == ""


def test_validate_good_scene(tmp_path: Path) -> None:
    scene = tmp_path / "good.yaml"
    scene.write_text(f"input:\n  frames: {DEMO_IMAGE}\noutput: out\n")
    r = cli("validate", scene)
    assert r.returncode == EXIT_OK, r.stderr
    expected_dir = (tmp_path / "out").resolve() / "good"
    assert one_line(r.stdout) == f"ok: scene 'good', 1 frame(s) -> {expected_dir}"
    assert r.stderr == ""
    assert not (tmp_path / "out").exists()  # validate writes nothing
    assert not (ROOT / "out").exists()  # relative to the scene file, not the working directory


def test_version_and_verbose_after_the_command() -> None:
    from importlib import metadata

    r = cli("--version")
    assert (
        r.returncode == EXIT_OK
        and one_line(r.stdout) == f"python -m pipeline {metadata.version('gigacrowd-pipeline')}"
    )
    r = cli("validate", ROOT / "scenes" / "photo.yaml", "-v")  # -v after the command, not only before
    assert r.returncode == EXIT_OK, r.stderr
    assert " DEBUG " in r.stderr


@pytest.mark.parametrize("command", ["run", "validate", "ingest", "evaluate", "synth", "export gigacrowd",
                                     "export meshes", "draw", "train regressor"])  # fmt: skip
def test_every_command_says_its_options_defaults_an_example_and_exit_codes(command: str) -> None:
    from pipeline.cli import _subparsers, build_parser

    r = cli(*command.split(), "--help")
    assert r.returncode == EXIT_OK, r.stderr
    assert f"example: python -m pipeline {command.split()[0]}" in r.stdout and "130 interrupted" in r.stdout
    parser = dict(_subparsers(build_parser()))[command]
    undocumented = [a.option_strings for a in parser._actions if a.option_strings and not a.help]
    assert undocumented == []


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_run_refuses_a_worker_count_below_one_at_once(tmp_path: Path, workers: str) -> None:
    import time

    t0 = time.perf_counter()
    r = cli("run", ROOT / "scenes" / "photo.yaml", "--output", tmp_path, "--workers", workers)
    assert r.returncode == EXIT_USAGE and time.perf_counter() - t0 < 5
    assert one_line(r.stderr) == f"error: --workers: a number of workers >= 1 (got {workers})"
    assert not list(tmp_path.iterdir())


def test_validate_probes_every_frame_and_the_output(tmp_path: Path) -> None:
    from tests.conftest import png_header_only

    png_header_only(tmp_path / "huge.png", 70000, 70000)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "good.jpg").write_bytes(DEMO_IMAGE.read_bytes())
    scene = tmp_path / "s.yaml"
    scene.write_text("input:\n  frames: ['*.png', '*.jpg']\noutput: /proc/gigacrowd/runs\n")
    r = cli("validate", scene)
    assert r.returncode == EXIT_USAGE and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 4 and lines[-1].startswith("scene 's': 3 problem(s)")
    assert lines[0].startswith("error: output: cannot create directories in /proc")
    assert "frame huge: image header of" in lines[1] and "70000x70000" in lines[1]
    assert lines[2].startswith("error: frame empty: input image is empty (0 bytes)")
    # run refuses the output in one line naming the key, before any work
    r = cli("run", scene)
    assert r.returncode == EXIT_USAGE and one_line(r.stderr).startswith("error: output: cannot create")


def test_a_frame_too_small_for_the_detector_is_named(tmp_path: Path) -> None:
    import pyvips

    pyvips.Image.black(20, 20, bands=3).write_to_file(str(tmp_path / "tiny.png"))
    scene = tmp_path / "s.yaml"
    scene.write_text("input:\n  frames: tiny.png\noutput: out\n")
    r = cli("validate", scene)
    assert r.returncode == EXIT_USAGE
    assert "frame tiny: image too small (20x20; the detector needs people >= 32 px tall" in r.stderr


def test_ctrl_c_ends_in_one_line_and_exit_130(tmp_path: Path) -> None:
    import os
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", ROOT / "scenes" / "photo.yaml", "--output", tmp_path],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's foreground job
    )  # fmt: skip
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # interrupt once the workers are busy
        lines.append(line)
        if "regress:" in line:
            break
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, "".join(lines) + rest
    tail = [ln for ln in rest.splitlines() if " INFO " not in ln]
    assert tail == ["interrupted: completed units are kept; rerun to resume"], rest


def test_validate_missing_scene_file(tmp_path: Path) -> None:
    r = cli("validate", tmp_path / "nope.yaml")
    assert r.returncode == EXIT_USAGE
    assert one_line(r.stderr) == f"error: scene file not found: {tmp_path / 'nope.yaml'}"


def test_validate_missing_frame(tmp_path: Path) -> None:
    scene = tmp_path / "s.yaml"
    scene.write_text("input:\n  frames: missing.jpg\n")
    r = cli("validate", scene)
    assert r.returncode == EXIT_USAGE
    line = one_line(r.stderr)
    assert line.startswith("error: input.frames: 'missing.jpg' is not a file")
    assert str(tmp_path / "missing.jpg") in line


def test_ingest_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jpg"
    r = cli("ingest", missing, "--out", tmp_path / "out")
    assert r.returncode == EXIT_USAGE
    assert one_line(r.stderr) == f"error: input image not found: {missing}"
    assert r.stdout == ""


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--chunk", "1025", "error: ingest options: chunk must be even"),
        ("--chunk", "32", "error: ingest options: --chunk: Input should be greater than or equal to 64"),
        ("--min-side", "3", "error: ingest options: --min-side: Input should be greater than or equal to 16"),
    ],
    ids=["odd-chunk", "small-chunk", "small-min-side"],
)
def test_ingest_bad_option(tmp_path: Path, option: str, value: str, expected: str) -> None:
    r = cli("ingest", DEMO_IMAGE, "--out", tmp_path / "out", option, value)
    assert r.returncode == EXIT_USAGE
    assert one_line(r.stderr).startswith(expected)
    assert "pydantic.dev" not in r.stderr
    assert not (tmp_path / "out").exists()


def _assert_nothing_half_written(out: Path) -> None:
    leftovers = [p for p in out.rglob("*") if p.name == STORE_NAME or p.name.startswith(".tmp-")]
    assert leftovers == []


@pytest.mark.parametrize("content", [b"", b"hello, this is text and not a JPEG\n"], ids=["empty", "text"])
def test_ingest_unreadable_image_fails_in_one_line(tmp_path: Path, content: bytes) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(content)
    out = tmp_path / "out"
    r = cli("ingest", image, "--out", out)
    assert r.returncode == EXIT_FAILED
    line = one_line(r.stderr)
    assert line.startswith("error: ")
    assert str(image) in line
    assert "Traceback" not in r.stderr
    _assert_nothing_half_written(out)


# ------------------------------------------------------------------------------------------------ evaluate

EVAL_K = [[1000.0, 0.0, 1000.0], [0.0, 1000.0, 500.0], [0.0, 0.0, 1.0]]
# Toy body: hips and shoulders (SMPL joints 1, 2, 16, 17) average to the origin; COCO joints around it.
_COCO_RAW = np.array([[0.02 * k - 0.16, 0.1 * k - 0.8, 0.0] for k in range(17)])
_JOINTS_RAW = np.zeros((24, 3))
_JOINTS_RAW[[1, 2, 16, 17]] = [[0.1, 0.1, 0.0], [-0.1, 0.1, 0.0], [0.2, -0.1, 0.0], [-0.2, -0.1, 0.0]]


def toy_body(pose: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(pose)
    return np.broadcast_to(_JOINTS_RAW, (n, 24, 3)), np.broadcast_to(_COCO_RAW, (n, 17, 3))


def _people(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.uniform(8, 30, n)
    return np.stack([rng.uniform(-0.5, 0.5, n) * z, np.full(n, 1.0), z], axis=1)


def write_eval_files(root: Path, frames: dict[str, int]) -> tuple[Path, Path]:
    """truth.json per frame under root/gt/<frame>/ and one predict.json matching them exactly."""
    from schemas.predict import FramePrediction, write_predictions
    from schemas.truth import Truth, write_truth

    preds = {}
    for i, (frame, n) in enumerate(frames.items()):
        torso = _people(n, i)
        coco = torso[:, None, :] + _COCO_RAW
        kp = np.stack(
            [1000 * coco[..., 0] / coco[..., 2] + 1000, 1000 * coco[..., 1] / coco[..., 2] + 500], -1
        )
        people = [
            {
                "bbox": [*(kp[j].min(0) - 5).tolist(), *(kp[j].max(0) + 5).tolist()],
                "keypoints": [[x / 2000, y / 1000, 2] for x, y in kp[j].tolist()],
                "type": "normal",
                "hvip2d": kp[j, 16].tolist(),
                "hvip3d": [torso[j, 0], 1.8, torso[j, 2]],
                "torso_center": torso[j].tolist(),
                "smpl": {"pose": [0.0] * 72, "shape": [0.0] * 10, "transl": torso[j].tolist()},
                "visibility": 1.0,
            }
            for j in range(n)
        ]
        truth = Truth.model_validate(
            {
                "image_shape": {"height": 1000, "width": 2000},
                "intrinsics": EVAL_K,
                "ground_plane": [0.0, -1.0, 0.0, 1.8],
                "body_model": {"name": "toy", "sha256": "0" * 64},
                "frame_info": {frame: people},
            }
        )
        write_truth(truth, root / "gt" / frame.removesuffix(".jpg") / TRUTH_FILE)
        preds[frame] = FramePrediction.from_arrays(
            np.array(EVAL_K), np.zeros((n, 72)), np.zeros((n, 10)), torso, 1.0
        )
    write_predictions(preds, root / "predict.json")
    return root / "predict.json", root / "gt"


def test_evaluate_help() -> None:
    r = cli("evaluate", "--help")
    assert r.returncode == EXIT_OK, r.stderr
    assert r.stdout.startswith("usage: python -m pipeline evaluate")
    for option in ("--pred", "--gt", "--out", "--body"):
        assert option in r.stdout


def test_evaluate_missing_predictions(tmp_path: Path) -> None:
    _, gt = write_eval_files(tmp_path, {"a_000001.jpg": 3})
    r = cli("evaluate", "--pred", tmp_path / "nope.json", "--gt", gt)
    assert r.returncode == EXIT_USAGE
    assert one_line(r.stderr) == f"error: predictions file not found: {tmp_path / 'nope.json'}"
    assert r.stdout == ""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"a_000001.jpg": {"Intrinsic_matrix": ', "invalid JSON at line 1"),
        (
            '{"a_000001.jpg": {"Intrinsic_matrix": [[1,0,0],[0,1,0],[0,0,1]], "person_list": '
            '[{"pose": [0.0], "shape": [0.0], "trans_cam": [0, 0, 1], "scale_smpl": 1, '
            '"gender": "neutral"}]}}',
            "frame 'a_000001.jpg': person_list[0].pose: List should have at least 72 items",
        ),
    ],
    ids=["truncated", "short-pose"],
)
def test_evaluate_malformed_predictions(tmp_path: Path, content: str, expected: str) -> None:
    _, gt = write_eval_files(tmp_path, {"a_000001.jpg": 3})
    pred = tmp_path / "bad.json"
    pred.write_text(content)
    r = cli("evaluate", "--pred", pred, "--gt", gt)
    assert r.returncode == EXIT_USAGE
    line = one_line(r.stderr)
    assert line.startswith(f"error: {pred}: ")
    assert expected in line
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("case", ["missing", "empty-dir", "bad-truth", "unknown-frame", "twice", "body-file"])
def test_evaluate_bad_inputs_exit_2_in_one_line(tmp_path: Path, case: str) -> None:
    pred, gt = write_eval_files(tmp_path, {"a_000001.jpg": 3})
    args: list[str | Path] = ["evaluate", "--pred", pred, "--gt", gt]
    if case == "missing":
        args[4] = tmp_path / "nowhere"
        expected = f"error: ground truth not found: {tmp_path / 'nowhere'}"
    elif case == "empty-dir":
        (tmp_path / "empty").mkdir()
        args[4] = tmp_path / "empty"
        expected = f"error: no truth.json below {tmp_path / 'empty'}"
    elif case == "bad-truth":
        truth = gt / "a_000001" / TRUTH_FILE
        truth.write_text(truth.read_text().replace('"type":"normal"', '"type":"crowd"', 1))
        expected = f"error: {truth}: frame 'a_000001.jpg': person 0: type: Input should be"
    elif case == "unknown-frame":
        pred2, _ = write_eval_files(tmp_path / "other", {"b_000001.jpg": 2})
        args[2] = pred2
        expected = "error: predictions for 1 frame(s) with no ground truth: 'b_000001.jpg'"
    elif case == "twice":
        copy = tmp_path / "copy" / TRUTH_FILE
        copy.parent.mkdir()
        copy.write_bytes((gt / "a_000001" / TRUTH_FILE).read_bytes())
        args.append(copy)
        expected = "error: frame 'a_000001.jpg' is annotated twice"
    else:
        args += ["--body", tmp_path / "SMPL_NEUTRAL.pkl"]
        expected = f"error: body model file not found: {tmp_path / 'SMPL_NEUTRAL.pkl'}"
    r = cli(*args)
    assert r.returncode == EXIT_USAGE, r.stderr
    assert one_line(r.stderr).startswith(expected)
    assert r.stdout == ""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("builtin:smplx", "unknown built-in body model"),
        ("missing/SMPL_NEUTRAL.pkl", "body model file not found"),
    ],
)
def test_evaluate_with_a_bad_body_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, message: str
) -> None:
    from pipeline import cli as cli_module

    pred, gt = write_eval_files(tmp_path, {"a_000001.jpg": 3})
    argv = [
        "evaluate",
        "--pred",
        str(pred),
        "--gt",
        str(gt),
        "--body",
        str(tmp_path / body) if "/" in body else body,
    ]
    assert cli_module.main(argv) == EXIT_USAGE
    assert message in one_line(capsys.readouterr().err)


def test_evaluate_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline import cli as cli_module

    frames = {"plaza_000001.jpg": 4, "plaza_000002.jpg": 5, "gate_000001.jpg": 3}
    pred, gt = write_eval_files(tmp_path, frames)
    asked: list[str] = []

    def load(spec: str) -> object:
        asked.append(spec)
        return toy_body

    monkeypatch.setattr(cli_module, "_load_body", load)
    out = tmp_path / "reports" / "report.json"
    code = cli_module.main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    assert asked == ["builtin:neutral"]
    report = json.loads(out.read_text())
    assert report["overall"]["n_frames"] == 3
    assert report["overall"]["score"] == pytest.approx(1.0)
    assert set(report["scenes"]) == {"plaza", "gate"}
    assert report["scenes"]["plaza"]["n_gt"] == 9
    lines = captured.out.splitlines()
    assert lines[0].split()[:2] == ["scene", "frames"]
    assert any(ln.startswith("all ") and "1.0000" in ln for ln in lines)
    assert lines[-1] == f"report -> {out}"


def test_evaluate_unknown_builtin_body(tmp_path: Path) -> None:
    pytest.importorskip("tasks.models.body")
    pred, gt = write_eval_files(tmp_path, {"a_000001.jpg": 3})
    r = cli("evaluate", "--pred", pred, "--gt", gt, "--body", "builtin:nobody")
    assert r.returncode == EXIT_USAGE, r.stderr
    assert one_line(r.stderr).startswith("error: ")
    assert "builtin:nobody" in r.stderr


def test_synth_writes_image_and_truth(tmp_path: Path) -> None:
    from pipeline import cli as cli_module

    argv = [
        "synth",
        "--people",
        "12",
        "--seed",
        "3",
        "--width",
        "640",
        "--height",
        "320",
        "--out",
        str(tmp_path),
    ]
    assert cli_module.main(argv) == 0
    assert (tmp_path / "synth-seed3_000000.jpg").stat().st_size > 1000
    assert len(json.loads((tmp_path / TRUTH_FILE).read_text())["frame_info"]["synth-seed3_000000.jpg"]) == 12
    assert cli_module.main(["synth", "--people", "0", "--out", str(tmp_path / "no")]) == EXIT_USAGE
    assert not (tmp_path / "no").exists()


def test_synth_tiff_on_a_slope(tmp_path: Path) -> None:
    from pipeline import cli as cli_module

    argv = ["synth", "--people", "12", "--width", "640", "--height", "320", "--max-slope-deg", "10"]
    assert cli_module.main([*argv, "--format", "tiff", "--out", str(tmp_path)]) == 0
    truth = json.loads((tmp_path / TRUTH_FILE).read_text())
    assert list(truth["frame_info"]) == ["synth-seed0_000000.tif"]
    normal = np.array(truth["ground_plane"][:3])
    assert abs(np.linalg.norm(normal) - 1) < 1e-6
    assert cli_module.main([*argv[:-1], "45", "--out", str(tmp_path / "no")]) == EXIT_USAGE


def test_train_regressor_writes_weights_and_a_manifest_that_reproduces_them(tmp_path: Path) -> None:
    from tasks.files import file_sha256
    from tasks.models.embedded import load_embedded

    out = tmp_path / "w" / "kp.pt"
    args = ("--steps", "3", "--batch", "8", "--width", "32", "--blocks", "1", "--eval-people", "40")
    args = (*args, "--threads", "1")
    r = cli("train", "regressor", "--out", out, *args)
    assert r.returncode == EXIT_OK, r.stderr
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["sha256"] == file_sha256(out)
    assert manifest["command"].startswith(f"python -m pipeline train regressor --out {out} --steps 3")
    assert manifest["model"]["width"] == 32 and manifest["model"]["blocks"] == 1
    assert manifest["config"]["seed"] == 0 and "--blocks 1 --dropout 0.0" in manifest["command"]
    assert set(manifest["eval"]["bands"]) == {"24-39", "40-63", "64-127", "128-223", "224-1000"}
    model = load_embedded(str(out))
    assert model.sha256 == manifest["sha256"] and model.encoder[0].out_features == 32 and model.blocks == 1
    # The same command and seed give the same weights.
    again = tmp_path / "again.pt"
    assert cli("train", "regressor", "--out", again, *args).returncode == EXIT_OK
    assert file_sha256(again) == manifest["sha256"]


def test_train_regressor_bad_options(tmp_path: Path) -> None:
    r = cli("train", "regressor", "--out", tmp_path / "x.pt", "--steps", "0")
    assert r.returncode == EXIT_USAGE
    assert "--steps" in one_line(r.stderr)
    r = cli("train", "regressor", "--out", tmp_path / "x.pt", "--dropout", "1.5")
    assert r.returncode == EXIT_USAGE and "--dropout must be in [0, 1), got 1.5" in one_line(r.stderr)
    assert not (tmp_path / "x.pt").exists()


def test_run_export_evaluate_on_a_synthetic_frame(tmp_path: Path, synthetic_run: tuple[Path, Path]) -> None:
    """run -> persons dataset -> export gigacrowd -> evaluate: the CLI's score is the evaluator's on
    the same predictions in memory, and the predicted people are really there."""
    from schemas.truth import read_truth
    from tasks.evaluate import evaluate
    from tasks.export import gigacrowd_predictions
    from tasks.models.body import body_fn

    run, truth_file = synthetic_run
    pred = tmp_path / "predict.json"
    r = cli("export", "gigacrowd", run, "--out", pred)
    assert r.returncode == EXIT_OK, r.stderr
    doc = json.loads(pred.read_text())
    assert list(doc) == ["synth-seed4_000000.jpg"]
    r = cli("evaluate", "--pred", pred, "--gt", truth_file, "--out", tmp_path / "report.json")
    assert r.returncode == EXIT_OK, r.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    memory = evaluate(
        gigacrowd_predictions(run),
        {"synth-seed4_000000.jpg": read_truth(truth_file)},
        body_fn("builtin:neutral"),
    )
    assert report["overall"]["score"] == pytest.approx(memory.overall.means["score"], abs=1e-9)
    means = memory.overall.means
    assert means["oks"] > 0.5 and means["pcod"] > 0.7  # people found and roughly placed
    # the run's report.html shows the same metrics, the stages and the pictures
    page = (run / REPORT).read_text()
    assert f"<td>{means['score']:.3f}</td>" in page and "GigaCrowd metrics" in page
    assert "synth-seed4_000000/birdseye.png" in page and "<td style='text-align:left'>crowd</td>" in page
    # meshes of two people, as PLY and GLB: the body model's vertices placed where the table puts them
    import trimesh

    from tasks.export import read_persons

    rows = read_persons(run / PERSONS_DIR).sort_by("person_id")
    for suffix in (".ply", ".glb"):
        r = cli(
            "export",
            "meshes",
            run,
            "--frame",
            "synth-seed4_000000",
            "--people",
            "0,1",
            "--out",
            tmp_path / f"m{suffix}",
        )
        assert r.returncode == EXIT_OK, r.stderr
        mesh = trimesh.load(tmp_path / f"m{suffix}", force="mesh", process=False)
        assert len(mesh.vertices) == 2 * 1229 and len(mesh.faces) == 2 * 2454
    pelvis = np.asarray(rows.column("pelvis").to_pylist()[:2])
    near = np.linalg.norm(
        np.asarray(trimesh.load(tmp_path / "m.ply", process=False).vertices)[:1229].mean(0) - pelvis[0]
    )
    assert near < 0.5  # metres: person 0's mesh is centred near its pelvis
    r = cli(
        "export",
        "meshes",
        run,
        "--frame",
        "synth-seed4_000000",
        "--people",
        "999",
        "--out",
        tmp_path / "n.ply",
    )
    assert r.returncode == EXIT_USAGE and "no person [999]" in one_line(r.stderr)
    # a full-resolution region around person 0, drawn over the frame's own pixels
    import pyvips

    from tasks.ingest import open_levels

    x0, y0, x1, y1 = (int(v) for v in np.asarray(rows.column("bbox").to_pylist()[0]))
    region = f"{x0 - 20},{y0 - 20},{x1 + 20},{y1 + 20}"
    r = cli("draw", run, "--frame", "synth-seed4_000000", "--region", region, "--scale", "1",
            "--out", tmp_path / "r.png")  # fmt: skip
    assert r.returncode == EXIT_OK, r.stderr
    drawn = pyvips.Image.new_from_file(str(tmp_path / "r.png")).numpy()
    raw = open_levels(run / "synth-seed4_000000" / STORE_NAME)[0][
        max(y0 - 20, 0) : y1 + 20, max(x0 - 20, 0) : x1 + 20
    ]
    assert drawn.shape == raw.shape
    assert (np.abs(drawn.astype(int) - raw).max(2) > 40).mean() > 0.1  # the person is painted over
    r = cli("draw", run, "--frame", "synth-seed4_000000", "--region", "0,0,x,1", "--out", tmp_path / "q.png")
    assert r.returncode == EXIT_USAGE and "--region" in one_line(r.stderr)
    bad = cli("export", "gigacrowd", tmp_path, "--out", tmp_path / "x.json")
    assert bad.returncode == EXIT_USAGE and "no persons/ dataset" in one_line(bad.stderr)
    assert not (tmp_path / "x.json").exists()
