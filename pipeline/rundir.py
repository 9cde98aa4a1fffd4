"""The run directory `<output>/<scene>/<frame>/`, atomic outputs and manifests.

Every output is built under a temporary name beside its final one (`.tmp-<name>-<random>`) and renamed
into place only when complete, so a killed unit leaves no partial output under a final name; temporary
leftovers are swept at the start of the next run. Manifests are written by the driver alone (workers
return records), so they have a single writer.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from schemas.io import OLD_PREFIX, TMP_PREFIX, atomic_output, remove
from schemas.layout import MANIFEST

_VERSIONED = (
    "gigacrowd-pipeline",
    "numpy",
    "dask",
    "distributed",
    "zarr",
    "pyvips",
    "pyvips-binary",
    "pydantic",
    "torch",
    "smplx",
    "onnxruntime",
    "pyarrow",
    "pandas",
)


def inside(root: Path, *parts: str) -> Path:
    """root / parts, refusing any result outside root (names come from user files)."""
    root = root.resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise ValueError(f"{'/'.join(parts)!r} would escape {root}")
    return path


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file, fsync, rename)."""
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def sweep_partials(root: Path) -> list[Path]:
    """Remove temporary and moved-aside leftovers of killed runs below `root`; return what was removed."""
    if not root.is_dir():
        return []
    removed = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(dirnames) + filenames:
            if name.startswith((TMP_PREFIX, OLD_PREFIX)):
                p = Path(dirpath) / name
                remove(p)
                removed.append(p)
        dirnames[:] = [
            d for d in dirnames if not d.startswith((TMP_PREFIX, OLD_PREFIX)) and not d.endswith(".zarr")
        ]
    return removed


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in _VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


@dataclass
class UnitRecord:
    """A completed unit of work: what it read, with which settings, what it wrote."""

    stage: str
    unit: str
    config_hash: str
    input_sha256: str
    input_bytes: int
    input_mtime_ns: int
    outputs: list[str]
    seconds: float
    finished: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    info: dict[str, Any] = field(default_factory=dict)


class FrameManifest:
    """`<frame>/manifest.json`: the frame's source and its completed units, keyed 'stage/unit'."""

    def __init__(self, frame_dir: Path, frame: str, source: Path) -> None:
        self.dir, self.frame, self.source = frame_dir, frame, source
        self.units: dict[str, dict[str, Any]] = {}
        path = frame_dir / MANIFEST
        if path.is_file():
            try:
                self.units = json.loads(path.read_text()).get("units", {})
            except (json.JSONDecodeError, AttributeError):
                self.units = {}  # unreadable: treat every unit as not done

    def done(self, stage: str, unit: str, config_hash: str) -> UnitRecord | None:
        """The record of `stage/unit` if it completed with this config on the same, unchanged input."""
        rec = self.units.get(f"{stage}/{unit}")
        if not rec or rec.get("config_hash") != config_hash:
            return None
        try:
            st = self.source.stat()
        except OSError:
            return None
        if (rec.get("input_bytes"), rec.get("input_mtime_ns")) != (st.st_size, st.st_mtime_ns):
            return None
        if not all((self.dir / o).exists() for o in rec.get("outputs", [])):
            return None
        return UnitRecord(**rec)

    def previous_sha256(self, stage: str, unit: str, config_hash: str) -> str | None:
        """The input sha256 an earlier run recorded for `stage/unit` with these settings, if any."""
        rec = self.units.get(f"{stage}/{unit}")
        return rec.get("input_sha256") if rec and rec.get("config_hash") == config_hash else None

    def follow_source(self, ingest: UnitRecord) -> None:
        """The source was re-read and its bytes are unchanged (same sha256): later stages' records,
        made from the same bytes, move to the file's new size/timestamp so they stay complete."""
        for key, rec in self.units.items():
            if key != "ingest/frame" and rec.get("input_sha256") == ingest.input_sha256:
                rec["input_bytes"], rec["input_mtime_ns"] = ingest.input_bytes, ingest.input_mtime_ns
        self.record(ingest)

    def record(self, rec: UnitRecord) -> None:
        self.units[f"{rec.stage}/{rec.unit}"] = asdict(rec)
        write_json(
            self.dir / MANIFEST, {"frame": self.frame, "source": str(self.source), "units": self.units}
        )
