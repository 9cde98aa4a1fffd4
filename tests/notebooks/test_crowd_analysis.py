"""notebooks/crowd_analysis.ipynb runs top to bottom on a real (small) run's persons dataset."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from schemas.layout import PERSONS_DIR
from tests.conftest import REPO


def test_notebook_executes_on_a_run(synthetic_run: tuple[Path, Path], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    run, _ = synthetic_run
    monkeypatch.setenv("GIGACROWD_PERSONS", str(run / PERSONS_DIR))
    nb = nbformat.read(REPO / "notebooks" / "crowd_analysis.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()
    text = "".join(
        o.get("text", "") + "".join(o.get("data", {}).get("text/plain", ""))
        for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    )  # fmt: skip
    assert "error" not in [o.get("output_type") for c in nb.cells for o in c.get("outputs", [])]
    assert "groups," in text and "stature median" in text and "densest cell" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # density, heights/shapes, neighbours/groups
    assert os.environ["GIGACROWD_PERSONS"].endswith(PERSONS_DIR)
