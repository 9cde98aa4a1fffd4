"""Helpers the benchmark scripts share (each script puts the repository on sys.path first)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from schemas.layout import TRUTH_FILE


def cached_frame(frame_dir: Path, people: int, width: int, height: int, seed: int) -> tuple[Path, Path]:
    """A synthetic frame (tasks/synth.synthesize) rendered once into `frame_dir` and reused: (its JPEG,
    its truth.json). Rendered into a temporary sibling and renamed, so an interrupted render leaves no
    half-written frame to be taken for a cached one."""
    if not (frame_dir / TRUTH_FILE).is_file():
        from schemas.scene import SyntheticConfig
        from tasks.models.body import BUILTIN_NEUTRAL, BodyModel
        from tasks.poses import load_bank
        from tasks.synth import synthesize

        frame_dir.parent.mkdir(parents=True, exist_ok=True)
        part = Path(tempfile.mkdtemp(dir=frame_dir.parent, prefix=f".{frame_dir.name}-"))
        synthesize(SyntheticConfig(people=people, width=width, height=height, seed=seed), part,
                   BodyModel.load(BUILTIN_NEUTRAL), load_bank())  # fmt: skip
        part.rename(frame_dir)
    return next(frame_dir.glob("*.jpg")), frame_dir / TRUTH_FILE
