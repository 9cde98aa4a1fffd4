"""Shared fixtures: real photographs shipped in the repo, and image files of every kind made from them."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pyvips

from schemas.layout import SYNTHETIC_DIR

REPO = Path(__file__).resolve().parents[1]
DEMO_PHOTO = REPO / "scenes" / "images" / "17790319373_bd19b24cfc_k.jpg"


@pytest.fixture(scope="session")
def photo() -> pyvips.Image:
    """The demo photograph (1116 x 600, public domain), decoded into memory."""
    return pyvips.Image.new_from_file(str(DEMO_PHOTO)).copy_memory()


def odd_crop(img: pyvips.Image, width: int = 1001, height: int = 597) -> pyvips.Image:
    return img.crop(7, 1, width, height)


def write_kind(img: pyvips.Image, kind: str, path: Path) -> Path:
    """Write `img` (RGB uint8) as one of the input kinds the ingest stage must read."""
    if kind == "jpeg":
        img.jpegsave(str(path), Q=90)
    elif kind == "jpeg-progressive":
        img.jpegsave(str(path), Q=90, interlace=True)
    elif kind == "png":
        img.pngsave(str(path))
    elif kind == "tiff-strip":
        img.tiffsave(str(path))
    elif kind == "tiff-tiled":
        img.tiffsave(str(path), tile=True, tile_width=128, tile_height=128, compression="deflate")
    elif kind == "tiff-pyramid":
        img.tiffsave(
            str(path), tile=True, pyramid=True, tile_width=128, tile_height=128, compression="jpeg", Q=95
        )
    elif kind == "bigtiff":
        img.tiffsave(str(path), tile=True, bigtiff=True, tile_width=256, tile_height=256)
    elif kind == "gray-jpeg":
        img.colourspace("b-w").jpegsave(str(path), Q=90)
    elif kind == "gray-png":
        img.colourspace("b-w").pngsave(str(path))
    elif kind == "rgba-png":
        alpha = (img.extract_band(1) > 100).ifthenelse(255, 64).cast("uchar")
        img.bandjoin(alpha).copy(interpretation="srgb").pngsave(str(path))
    elif kind == "rgb16-png":
        (img.cast("ushort") * 257 + 13).cast("ushort").copy(interpretation="rgb16").pngsave(str(path))
    elif kind == "rgb16-tiff":
        (img.cast("ushort") * 257 + 200).cast("ushort").copy(interpretation="rgb16").tiffsave(
            str(path), tile=True, tile_width=64, tile_height=64
        )
    elif kind == "webp":
        img.webpsave(str(path), lossless=True)
    else:
        raise ValueError(kind)
    return path


SUFFIX = {
    "jpeg": ".jpg",
    "jpeg-progressive": ".jpg",
    "png": ".png",
    "tiff-strip": ".tif",
    "tiff-tiled": ".tif",
    "tiff-pyramid": ".tif",
    "bigtiff": ".tif",
    "gray-jpeg": ".jpg",
    "gray-png": ".png",
    "rgba-png": ".png",
    "rgb16-png": ".png",
    "rgb16-tiff": ".tif",
    "webp": ".webp",
}


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height RGB but which holds only its first two rows of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    z = zlib.compressobj()
    rows = z.compress(b"\x00" * (2 * (1 + 3 * width))) + z.flush(zlib.Z_SYNC_FLUSH)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def reference_pyramid(level0: np.ndarray, n_levels: int) -> list[np.ndarray]:
    """Levels by a direct, loop-free but independent formula: mean of each 2x2 block after edge padding."""
    from tasks.pyramid import downsample2x

    out = [level0]
    for _ in range(1, n_levels):
        out.append(downsample2x(out[-1]))
    return out


COCO_PHOTO = REPO / "tests" / "data" / "real" / "coco_000000000785.jpg"


@pytest.fixture(scope="session")
def coco_person() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A real COCO photograph of one person (tests/data/real/README.md): (RGB (H, W, 3) uint8,
    box (4,) x1, y1, x2, y2 px, keypoints (17, 3) x, y px, visibility) from its human annotation."""
    import json

    ann = json.loads(COCO_PHOTO.with_suffix(".json").read_text())["annotations"][0]
    x, y, w, h = ann["bbox"]
    rgb = pyvips.Image.new_from_file(str(COCO_PHOTO)).numpy()
    return rgb, np.array([x, y, x + w, y + h]), np.asarray(ann["keypoints"], float).reshape(17, 3)


@pytest.fixture(scope="session")
def yolox_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YOLOX-Nano checkpoint in the official layout ({"model": state_dict}, `module.` prefixes), made
    from the shipped ONNX file (tasks/models/build_yolox_dynamic.state_from_folded_onnx)."""
    import torch

    pytest.importorskip("onnx")
    from tasks.models.build_yolox_dynamic import state_from_folded_onnx
    from tasks.models.yolox_onnx import NANO_PATH

    path = tmp_path_factory.mktemp("yolox") / "yolox_nano.pth"
    state = state_from_folded_onnx(NANO_PATH)
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, path)
    return path


def one_line_error(error: type[Exception], fn: Any, *args: Any) -> str:
    """The message of the `error` that fn(*args) raises, checked to be one line a user can act on."""
    with pytest.raises(error) as info:
        fn(*args)
    text = str(info.value)
    assert len(text.splitlines()) == 1, text
    assert "pydantic.dev" not in text  # no validation-library boilerplate
    return text


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A whole run (`python -m pipeline run`) of one small synthetic frame (40 people, 3072x1536,
    seed 4): (the run's scene directory, the frame's truth.json)."""
    import subprocess
    import sys

    base = tmp_path_factory.mktemp("synthetic_run")
    scene = base / "synth.yaml"
    scene.write_text(
        "name: s\ninput:\n  synthetic: {people: 40, width: 3072, height: 1536, seed: 4}\n"
        "output: out\ncluster: {n_workers: 1}\n"
    )
    cmd = [sys.executable, "-m", "pipeline", "run", str(scene)]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return base / "out" / "s", next((base / "out" / SYNTHETIC_DIR).glob("*/seed4/truth.json"))


def smpl_of(r: dict[str, Any], det_id: np.ndarray, metadata: dict[str, str] | None = None) -> Any:
    """A frame's smpl table (schemas/tables.FrameSmpl) from arrays named as tasks/regress.smpl_rows's
    arguments (scale optional, default 1; stature default 1.7 m; support default not judged),
    keypoint_error and ground_distance."""
    from schemas.tables import FrameSmpl
    from tasks.quality import Quality
    from tasks.regress import smpl_rows

    n = len(det_id)
    q = Quality(r["keypoint_error"], r["ground_distance"], np.zeros(4))
    rows = smpl_rows(
        det_id, r["pose"], r["betas"], r["transl"], r.get("scale", np.ones(n)), r["cam"], r["joints"],
        r["focal"], r["pp"], r["centre"], r["b"], r["finetuned"], q, r.get("stature", np.full(n, 1.7)),
        r.get("support"),
    )  # fmt: skip
    return FrameSmpl(rows, metadata or {})
