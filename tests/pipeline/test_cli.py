"""`python -m pipeline` as a user runs it: exit codes, one-line errors, nothing half-written left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
    leftovers = [p for p in out.rglob("*") if p.name == "image.zarr" or p.name.startswith(".tmp-")]
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
