"""The pictures a person reads without the README: person ids on overlay.png, meshes.png and `draw`'s
close-ups (matching the persons table's person_id), `draw --scale`, and `export meshes --people` in the
order given."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyvips

from schemas.layout import BIRDSEYE_FILE, MESHES_FILE, OVERLAY_FILE, PERSONS_DIR, STORE_NAME
from tests.pipeline.test_cli import EXIT_OK, EXIT_USAGE, cli, one_line

FRAME = "synth-seed4_000000"
TAG = 20  # the grey level of an id's tag background (tasks/draw.label_people)


def _rows(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """person_id (N,), bbox (N, 4) full-res px and pelvis (N, 3) m of the run's frame."""
    from tasks.export import read_persons

    rows = read_persons(run / PERSONS_DIR).sort_by("person_id")
    return (
        rows.column("person_id").to_numpy(),
        np.asarray(rows.column("bbox").to_pylist()),
        np.asarray(rows.column("pelvis").to_pylist()),
    )


def _tag_pixels(img: np.ndarray, x: int, top: int) -> int:
    """Pixels of an id tag's background in the band just above a box whose top left corner is (x, top)."""
    band = img[max(top - 45, 0) : max(top, 1), max(x - 2, 0) : x + 70, :3]
    return int((band == TAG).all(2).sum())


def test_export_meshes_keeps_the_order_given(tmp_path: Path, synthetic_run: tuple[Path, Path]) -> None:
    import trimesh

    run, _ = synthetic_run
    ids, _, pelvis = _rows(run)
    order = [int(ids[-1]), int(ids[0]), int(ids[len(ids) // 2])]
    out = tmp_path / "m.ply"
    r = cli("export", "meshes", run, "--frame", FRAME, "--people", ",".join(map(str, order)), "--out", out)
    assert r.returncode == EXIT_OK, r.stderr
    verts = np.asarray(trimesh.load(out, process=False).vertices).reshape(3, -1, 3)
    where = {int(i): p for i, p in zip(ids, pelvis, strict=True)}
    for mesh, pid in zip(verts, order, strict=True):  # mesh k is the k-th id given: nearest its pelvis
        dist = {q: float(np.linalg.norm(mesh.mean(0) - where[q])) for q in order}
        assert min(dist, key=dist.__getitem__) == pid and dist[pid] < 0.5
    for people, says in ((f"{order[0]},9999", "no person [9999]"), ("3,1,3", "person [3] more than once")):
        r = cli("export", "meshes", run, "--frame", FRAME, "--people", people, "--out", tmp_path / "n.ply")
        assert r.returncode == EXIT_USAGE and says in one_line(r.stderr)
        assert not (tmp_path / "n.ply").exists()


def test_draw_upscales_a_small_region_and_writes_ids(
    tmp_path: Path, synthetic_run: tuple[Path, Path]
) -> None:
    from tasks.ingest import open_levels

    run, _ = synthetic_run
    _, boxes, _ = _rows(run)
    h_frame, w_frame = open_levels(run / FRAME / STORE_NAME)[0].shape[:2]
    x0, y0, x1, y1 = np.round(boxes[np.argmax(boxes[:, 3] - boxes[:, 1])]).astype(int)  # the tallest
    region = (max(x0 - 20, 0), max(y0 - 50, 0), min(x1 + 20, w_frame), min(y1 + 20, h_frame))
    w, h = region[2] - region[0], region[3] - region[1]
    k = max(1, math.ceil(800 / min(w, h)))
    text = ",".join(map(str, region))
    r = cli("draw", run, "--frame", FRAME, "--region", text, "--out", tmp_path / "r.png")
    assert r.returncode == EXIT_OK, r.stderr
    drawn = pyvips.Image.new_from_file(str(tmp_path / "r.png")).numpy()
    assert k > 1 and drawn.shape[:2] == (h * k, w * k)
    assert _tag_pixels(drawn, (x0 - region[0]) * k, (y0 - region[1]) * k) > 100  # its id above its box
    r = cli("draw", run, "--frame", FRAME, "--region", text, "--scale", "1.5", "--out", tmp_path / "s.png")
    assert r.returncode == EXIT_OK, r.stderr
    assert pyvips.Image.new_from_file(str(tmp_path / "s.png")).numpy().shape[:2] == (
        round(h * 1.5),
        round(w * 1.5),
    )
    r = cli("draw", run, "--frame", FRAME, "--region", text, "--scale", "0", "--out", tmp_path / "q.png")
    assert r.returncode == EXIT_USAGE and "--scale must be above 0" in one_line(r.stderr)
    assert not (tmp_path / "q.png").exists()


def test_draw_help_shows_the_default_scale() -> None:
    from tasks.draw import DRAW_MIN_SIDE

    r = cli("draw", "--help")
    assert r.returncode == EXIT_OK
    assert f"shorter side at least {DRAW_MIN_SIDE} px" in " ".join(r.stdout.split())


def test_run_pictures_carry_person_ids_and_a_legend(synthetic_run: tuple[Path, Path]) -> None:
    from tasks.draw import _SUPPORT_RGB
    from tasks.ingest import open_levels
    from tasks.support import FLOOR

    run, _ = synthetic_run
    _, boxes, _ = _rows(run)
    width = open_levels(run / FRAME / STORE_NAME)[0].shape[1]
    x0, y0 = boxes[np.argmax(boxes[:, 3] - boxes[:, 1]), :2]  # the tallest person: labelled first
    for name in (OVERLAY_FILE, MESHES_FILE):
        img = pyvips.Image.new_from_file(str(run / FRAME / name)).numpy()
        s = img.shape[1] / width  # the thumbnail's scale
        assert _tag_pixels(img, round(x0 * s), round(y0 * s)) > 60, name
    birdseye = pyvips.Image.new_from_file(str(run / FRAME / BIRDSEYE_FILE)).numpy()
    swatch = (birdseye[:80, :, :3] == np.asarray(_SUPPORT_RGB[FLOOR], np.uint8)).all(2)
    assert swatch.sum() > 100  # the legend's swatch for the people standing on the floor
