"""`python -m pipeline`: run, validate, ingest. Exit 0 success, 1 failed run, 2 bad usage or config."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipeline.cluster import ClusterError
from pipeline.config import ConfigError, config_hash, frame_name, load_scene, resolve
from pipeline.progress import setup_logging

log = logging.getLogger("pipeline")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _cmd_validate(args: argparse.Namespace) -> int:
    path = Path(args.scene)
    rs = resolve(load_scene(path), path, Path(args.output) if args.output else None)
    print(f"ok: scene {rs.name!r}, {len(rs.frames)} frame(s) -> {rs.output / rs.name}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.run import run_scene

    path = Path(args.scene)
    scene = load_scene(path)
    if args.workers is not None:
        scene = scene.model_copy(
            update={"cluster": scene.cluster.model_copy(update={"n_workers": args.workers})}
        )
    rs = resolve(scene, path, Path(args.output) if args.output else None)
    summary = run_scene(rs)
    ran = sum(len(v) for v in summary.done.values())
    skipped = sum(len(v) for v in summary.skipped.values())
    if ran == 0 and skipped and not summary.failed:
        print(
            f"nothing to do: all {skipped} unit(s) of scene {rs.name!r} are already complete "
            f"({summary.scene_dir})"
        )
    else:
        print(
            f"scene {rs.name!r}: {ran} unit(s) ran, {skipped} already complete, "
            f"{len(summary.failed)} failed, "
            f"{summary.seconds:.1f} s -> {summary.scene_dir}"
        )
    if summary.not_available:
        print(f"not available yet (nothing ran in their place): {', '.join(summary.not_available)}")
    for frame, why in summary.failed.items():
        print(f"FAILED frame {frame}: {why}", file=sys.stderr)
    return EXIT_OK if summary.ok else EXIT_FAILED


def _cmd_ingest(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from pipeline.rundir import FrameManifest, UnitRecord, inside, sweep_partials
    from pipeline.stages import ingest_unit
    from schemas.scene import IngestConfig

    overrides = {
        k: v
        for k, v in {"chunk": args.chunk, "min_side": args.min_side, "compressor": args.compressor}.items()
        if v is not None
    }
    try:
        cfg = IngestConfig(**overrides)
    except ValidationError as e:
        # One line naming the option; str(e) would end with pydantic's documentation URL.
        problems = [
            (f"--{'-'.join(map(str, err['loc'])).replace('_', '-')}: " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ")
            for err in e.errors()
        ]
        raise ConfigError(f"ingest options: {'; '.join(problems)}") from None
    src = Path(args.image)
    if not src.is_file():
        raise ConfigError(f"input image not found: {src}")
    out = Path(args.out)
    name = args.frame or frame_name(src)
    frame_dir = inside(out, name)
    sweep_partials(frame_dir)
    manifest = FrameManifest(frame_dir, name, src)
    h = config_hash(cfg)
    if manifest.done("ingest", "frame", h):
        print(f"nothing to do: {frame_dir / 'image.zarr'} is complete for this file and settings")
        return EXIT_OK
    prev_sha = manifest.previous_sha256("ingest", "frame", h)
    rec = UnitRecord(**ingest_unit(str(src), str(frame_dir), name, cfg, h, prev_sha))
    manifest.record(rec)
    info = rec.info
    size = f"{info['width']}x{info['height']}" if "width" in info else "unchanged"
    print(f"ingested {src} ({size}) -> {frame_dir / 'image.zarr'} in {rec.seconds:.1f} s")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="3D reconstruction of every person in gigapixel crowd photographs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="run a scene end to end (completed units are skipped)",
        description="Run every available stage of a scene; rerunning skips completed units.",
    )
    p.add_argument("scene", help="scene.yaml")
    p.add_argument("--output", help="override the scene's output directory")
    p.add_argument("--workers", type=int, help="override cluster.n_workers (local cluster)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "validate",
        help="check a scene.yaml and its inputs without running",
        description="Parse and check a scene.yaml: keys, values, input frames.",
    )
    p.add_argument("scene", help="scene.yaml")
    p.add_argument("--output", help="override the scene's output directory")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "ingest",
        help="one image -> Zarr pyramid (the ingest stage alone)",
        description="Ingest one image into OUT/<frame>/image.zarr, without a cluster.",
    )
    p.add_argument("image", help="JPEG, PNG, TIFF (tiled, pyramidal, BigTIFF), WebP or HEIF file")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--frame", help="frame directory name (default: from the file name)")
    p.add_argument("--chunk", type=int, help="chunk side in pixels (default 1024)")
    p.add_argument("--min-side", type=int, dest="min_side", help="stop adding levels below this side")
    p.add_argument("--compressor", choices=["lz4", "zstd", "none"])
    p.set_defaults(func=_cmd_ingest)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: completed units are kept; rerun to resume", file=sys.stderr)
        return 130
    except Exception as e:  # a one-line report; -v shows the traceback
        if args.verbose:
            raise
        from tasks import InputError

        first = (str(e).strip().splitlines() or [""])[0]
        print(
            f"error: {first}" if isinstance(e, InputError) else f"error: {type(e).__name__}: {first}",
            file=sys.stderr,
        )
        return EXIT_FAILED
