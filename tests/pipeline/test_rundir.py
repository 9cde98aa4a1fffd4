from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.rundir import FrameManifest, UnitRecord, atomic_output, inside, sweep_partials, write_json
from schemas.layout import MANIFEST, STORE_NAME


def test_atomic_output_installs_only_complete_results(tmp_path: Path) -> None:
    final = tmp_path / "out.zarr"
    with atomic_output(final) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("1")
        assert not final.exists()
    assert (final / "a").read_text() == "1"
    with pytest.raises(RuntimeError), atomic_output(final) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("2")
        raise RuntimeError("killed half-way")
    assert (final / "a").read_text() == "1"  # the previous complete output survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]  # no temporary left
    with atomic_output(final) as tmp:
        tmp.mkdir()
        (tmp / "b").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["b"]  # replaced whole, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


def test_write_json_replaces_atomically(tmp_path: Path) -> None:
    write_json(tmp_path / "m.json", {"a": 1})
    write_json(tmp_path / "m.json", {"a": 2})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_sweep_removes_leftovers_of_killed_units_only(tmp_path: Path) -> None:
    (tmp_path / "f" / ".tmp-image.zarr-1234abcd").mkdir(parents=True)
    (tmp_path / "f" / ".tmp-manifest.json-99").write_text("{")
    (tmp_path / "f" / STORE_NAME).mkdir()
    removed = sweep_partials(tmp_path)
    assert len(removed) == 2
    assert [p.name for p in (tmp_path / "f").iterdir()] == [STORE_NAME]


@pytest.mark.parametrize("name", ["..", "../x", "a/../../b", "/etc"])
def test_names_cannot_escape_the_output_directory(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="escape"):
        inside(tmp_path, name)
    assert inside(tmp_path, "scene", "frame") == (tmp_path / "scene" / "frame").resolve()


def test_manifest_done_needs_same_settings_same_file_and_outputs(tmp_path: Path) -> None:
    src = tmp_path / "img.jpg"
    src.write_bytes(b"x" * 10)
    frame_dir = tmp_path / "run" / "img"
    (frame_dir / STORE_NAME).mkdir(parents=True)
    st = src.stat()
    m = FrameManifest(frame_dir, "img", src)
    m.record(UnitRecord("ingest", "frame", "h1", "sha", st.st_size, st.st_mtime_ns, [STORE_NAME], 1.0))
    again = FrameManifest(frame_dir, "img", src)  # read back from disk
    assert again.done("ingest", "frame", "h1") is not None
    assert again.done("ingest", "frame", "h2") is None  # settings changed
    src.write_bytes(b"y" * 11)  # input changed
    assert again.done("ingest", "frame", "h1") is None
    (frame_dir / MANIFEST).write_text("{ truncated")  # unreadable manifest: nothing counts as done
    assert FrameManifest(frame_dir, "img", src).units == {}
