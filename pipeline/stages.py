"""Stage units as run on a worker: call the pure function in tasks/, make its output atomic.

Each returns a plain dict (a rundir.UnitRecord) for the driver to record in the frame manifest.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.rundir import UnitRecord, atomic_output
from schemas.image_store import STORE_NAME
from schemas.scene import IngestConfig
from tasks.files import file_sha256
from tasks.ingest import ingest_image

if TYPE_CHECKING:
    from tasks.synth import SynthConfig


def ingest_unit(
    src: str, frame_dir: str, frame: str, cfg: IngestConfig, config_hash: str, previous_sha256: str | None
) -> dict[str, Any]:
    """Ingest one frame into `<frame_dir>/image.zarr`.

    When a store from an earlier run exists with the same settings and the file's bytes are unchanged
    (same sha256, only its timestamp moved), the store is kept and nothing is decoded.
    """
    t0 = time.perf_counter()
    st = os.stat(src)
    final = Path(frame_dir) / STORE_NAME
    base = {
        "stage": "ingest",
        "unit": "frame",
        "config_hash": config_hash,
        "input_bytes": st.st_size,
        "input_mtime_ns": st.st_mtime_ns,
        "outputs": [STORE_NAME],
    }
    if previous_sha256 and final.is_dir():
        sha = file_sha256(Path(src))
        if sha == previous_sha256:
            rec = UnitRecord(
                **base, input_sha256=sha, seconds=time.perf_counter() - t0, info={"reused": True}
            )
            return asdict(rec)
    with atomic_output(final) as tmp:
        info = ingest_image(Path(src), tmp, cfg, frame)
    rec = UnitRecord(
        **base,
        input_sha256=info.sha256,
        seconds=time.perf_counter() - t0,
        info={"width": info.width, "height": info.height, "loader": info.loader, "converted": info.converted},
    )
    return asdict(rec)


def synth_unit(frame_dir: str, cfg: SynthConfig, body: str) -> dict[str, Any]:
    """Generate one synthetic frame (image + truth.json) into `frame_dir`, all or nothing."""
    from tasks.models.body import BodyModel
    from tasks.poses import load_bank
    from tasks.synth import synthesize

    t0 = time.perf_counter()
    final = Path(frame_dir)
    with atomic_output(final) as tmp:
        image, truth = synthesize(cfg, tmp, BodyModel.load(body), load_bank())
    return {
        "image": str(final / image.name),
        "truth": str(final / truth.name),
        "seconds": time.perf_counter() - t0,
    }
