"""`python -m pipeline`: run, validate, ingest, evaluate. Exit 0 ok, 1 failed run, 2 bad usage or input."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, get_origin

from pipeline.cluster import ClusterError
from pipeline.config import ConfigError, config_hash, frame_name, load_scene, resolve
from pipeline.progress import setup_logging
from schemas.layout import PERSONS_DIR, STORE_NAME, TRUTH_FILE

if TYPE_CHECKING:
    from pydantic import BaseModel

    from schemas.truth import Truth
    from tasks.evaluate import BodyFn

log = logging.getLogger("pipeline")
M = TypeVar("M", bound="BaseModel")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _cmd_validate(args: argparse.Namespace) -> int:
    from pipeline.run import preflight

    path = Path(args.scene)
    rs = resolve(load_scene(path), path, Path(args.output) if args.output else None)
    problems = preflight(rs)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(
            f"scene {rs.name!r}: {len(problems)} problem(s) above; `run` would fail on them", file=sys.stderr
        )
        return EXIT_USAGE
    print(f"ok: scene {rs.name!r}, {len(rs.frames)} frame(s) -> {rs.output / rs.name}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.run import run_scene

    path = Path(args.scene)
    scene = load_scene(path)
    if args.workers is not None:
        if args.workers < 1:  # the limit of cluster.n_workers, whose value this replaces
            raise ConfigError(f"--workers: a number of workers >= 1 (got {args.workers})")
        cluster = scene.cluster.model_copy(update={"n_workers": args.workers})
        scene = scene.model_copy(update={"cluster": cluster})
    rs = resolve(scene, path, Path(args.output) if args.output else None)
    summary = run_scene(rs)
    ran = sum(len(v) for v in summary.done.values())
    skipped = sum(len(v) for v in summary.skipped.values())
    for frame, why in summary.removed.items():
        print(f"removed from persons/: {frame} ({why})")
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
    for frame, why in summary.failed.items():
        print(f"FAILED frame {frame}: {why}", file=sys.stderr)
    return EXIT_OK if summary.ok else EXIT_FAILED


def _settings(model: type[M], args: argparse.Namespace, names: tuple[str, ...], command: str) -> M:
    """The settings model of a command from its options (those not given keep the model's defaults),
    validated with the limits scene.yaml has; a bad value is a one-line error naming the option."""
    from pydantic import ValidationError

    given = {k: v for k in names if (v := getattr(args, k)) is not None}
    try:
        return model(**given)
    except ValidationError as e:
        # One line naming the option; str(e) would end with pydantic's documentation URL.
        problems = [
            (f"--{'-'.join(map(str, err['loc'])).replace('_', '-')}: " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ")
            for err in e.errors()
        ]
        raise ConfigError(f"{command} options: {'; '.join(problems)}") from None


def _cmd_ingest(args: argparse.Namespace) -> int:
    from pipeline.rundir import FrameManifest, UnitRecord, inside, sweep_partials
    from pipeline.stages import ingest_unit
    from schemas.scene import IngestConfig

    cfg = _settings(IngestConfig, args, ("chunk", "min_side", "compressor"), "ingest")
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
        print(f"nothing to do: {frame_dir / STORE_NAME} is complete for this file and settings")
        return EXIT_OK
    prev_sha = manifest.previous_sha256("ingest", "frame", h)
    rec = UnitRecord(**ingest_unit(str(src), str(frame_dir), name, cfg, h, prev_sha))
    manifest.record(rec)
    info = rec.info
    size = f"{info['width']}x{info['height']}" if "width" in info else "unchanged"
    print(f"ingested {src} ({size}) -> {frame_dir / STORE_NAME} in {rec.seconds:.1f} s")
    return EXIT_OK


SYNTH_OPTIONS = (
    "people", "preset", "seed", "width", "height", "focal_factor", "camera_height", "max_slope_deg",
    "max_roll_deg", "format", "jpeg_quality", "body",
)  # fmt: skip


def _cmd_synth(args: argparse.Namespace) -> int:
    from schemas.scene import SyntheticConfig
    from tasks import InputError
    from tasks.synth import synthesize_frame

    cfg = _settings(SyntheticConfig, args, SYNTH_OPTIONS, "synth")
    try:
        image, truth = synthesize_frame(cfg, Path(args.out))
    except (InputError, ValueError) as e:
        raise ConfigError(f"synth: {e}") from None
    print(f"wrote {image} and {truth}")
    return EXIT_OK


def _cmd_train_regressor(args: argparse.Namespace) -> int:
    import json

    from tasks import InputError
    from tasks.models.embedded import manifest_path
    from tasks.train_regressor import TrainConfig, train_to_file

    if args.steps < 1 or args.batch < 1 or args.threads < 1 or args.blocks < 0:
        raise ConfigError("train regressor: --steps, --batch and --threads must be positive, --blocks >= 0")
    if not 0 <= args.dropout < 1:
        raise ConfigError(f"train regressor: --dropout must be in [0, 1), got {args.dropout}")
    if not (0 <= args.activities <= 1 and 0 <= args.children <= 1):
        raise ConfigError("train regressor: --activities and --children are shares in [0, 1]")
    cfg = TrainConfig(
        steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, width=args.width, mode=args.mode,
        init=args.init, blocks=args.blocks, dropout=args.dropout, activities=args.activities,
        children=args.children,
    )  # fmt: skip
    command = (
        f"python -m pipeline train regressor --out {args.out} --steps {args.steps} --batch {args.batch} "
        f"--lr {args.lr} --width {args.width} --blocks {args.blocks} --dropout {args.dropout} "
        f"--seed {args.seed} --threads {args.threads} "
        f"--eval-seed {args.eval_seed} --eval-people {args.eval_people}"
        + (f" --mode {args.mode}" if args.mode != "keypoints" else "")
        + (f" --init {args.init}" if args.init else "")
        + (f" --activities {args.activities}" if args.activities else "")
        + (f" --children {args.children}" if args.children else "")
        + (" --fp16" if args.fp16 else "")
    )
    out = Path(args.out)
    try:
        record = train_to_file(
            cfg, out, command, threads=args.threads, fp16=args.fp16, eval_seed=args.eval_seed,
            eval_people=args.eval_people, log=lambda line: print(line, flush=True),
        )  # fmt: skip
    except InputError as e:
        raise ConfigError(f"train regressor: {e}") from None
    print(json.dumps(record["eval"]["large"]))  # type: ignore[index]
    print(f"wrote {out} (sha256 {record['sha256']}) and {manifest_path(out)}")
    return EXIT_OK


def _load_body(spec: str) -> BodyFn:
    """The body function named by --body: 'builtin:<name>' or the path of an SMPL model file."""
    from tasks import InputError
    from tasks.models.body import body_fn

    try:
        return body_fn(spec)
    except InputError as e:  # an unknown builtin name or an unreadable model file: the user's to fix
        raise ConfigError(str(e)) from None


def _truth_files(paths: list[str]) -> list[Path]:
    """Each --gt: a truth.json, or a directory searched for **/truth.json. A file named twice counts once."""
    files: dict[Path, Path] = {}
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            found = sorted(path.rglob(TRUTH_FILE))
            if not found:
                raise ConfigError(f"no {TRUTH_FILE} below {path}")
        elif path.is_file():
            found = [path]
        else:
            raise ConfigError(f"ground truth not found: {path}")
        for file in found:
            files.setdefault(file.resolve(), file)
    return list(files.values())


def _cmd_export_gigacrowd(args: argparse.Namespace) -> int:
    import json

    from schemas.io import atomic_write_text
    from schemas.predict import write_predictions
    from tasks.evaluate import some_names
    from tasks.export import (
        failed_frames,
        gigacrowd_predictions,
        refit_predictions,
        run_body,
        unit_scale_frame,
    )
    from tasks.models.body import BodyModel

    run, out = Path(args.run), Path(args.out)
    if not (run / PERSONS_DIR).is_dir():
        raise ConfigError(f"{run}: no persons/ dataset here (give <output>/<scene> of a completed run)")

    def first_line(e: Exception) -> str:
        return f"export: {run}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"

    try:
        failed = failed_frames(run)
        if failed and not args.allow_failed:  # a ConfigError is a ValueError: reworded below
            raise ConfigError(
                f"the latest run failed on {len(failed)} frame(s): {some_names(list(failed), 5)}; rerun "
                "them, or give --allow-failed to export the others"
            )
        preds = gigacrowd_predictions(run, exclude=failed)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(first_line(e)) from None
    for frame, why in failed.items():
        print(f"warning: frame {frame} failed in the latest run and is not exported: {why}", file=sys.stderr)
    if not preds:
        where = " outside the failed frames" if failed else ""
        raise ConfigError(f"export: {run}: the persons dataset holds no people{where}; nothing to export")
    note = ""
    if args.body or args.scale == "one":
        try:
            src = run_body(run, failed)
            dst = BodyModel.load(args.body) if args.body else src
        except (OSError, ValueError) as e:
            raise ConfigError(first_line(e)) from None
        if args.body:
            preds, report = refit_predictions(preds, src, dst)
            side = out.with_suffix(".refit.json")
            atomic_write_text(side, json.dumps(report, indent=1) + "\n")
            note += (
                f"; betas refitted to {dst.name} (rest joints and face, RMS per person: median "
                f"{report['median_rms_mm']:.1f} mm, max {report['max_rms_mm']:.1f} mm; per person in {side})"
            )
        if args.scale == "one":
            preds = {name: unit_scale_frame(pred, dst) for name, pred in preds.items()}
            note += "; scale_smpl 1 with every torso centre kept in place"
    write_predictions(preds, out)
    people = sum(len(p.person_list) for p in preds.values())
    print(f"wrote {out}: {len(preds)} frame(s), {people} people{note}")
    return EXIT_OK


def _people_rows(people: str, ids: Any, frame: str) -> list[int]:
    """The rows (indices into ids, the frame's person_id column) of --people's ids, in the order given."""
    try:
        wanted = [int(p) for p in people.split(",")]
    except ValueError:
        raise ConfigError(f"export meshes: --people takes person ids like 0,4,7, got {people!r}") from None
    if twice := sorted({p for p in wanted if wanted.count(p) > 1}):
        raise ConfigError(f"export meshes: --people lists person {twice} more than once: {people!r}")
    row = {int(i): k for k, i in enumerate(ids)}
    if missing := [p for p in wanted if p not in row]:
        known = f"ids {min(row)}..{max(row)}" if row else "no people"
        raise ConfigError(
            f"export meshes: no person {missing} in frame {frame!r} ({len(row)} people, {known})"
        )
    return [row[p] for p in wanted]


def _cmd_export_meshes(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from tasks.export import person_meshes, read_persons, write_meshes
    from tasks.models.body import BodyModel

    run, out = Path(args.run), Path(args.out)
    if out.suffix.lower() not in (".ply", ".obj", ".glb"):
        raise ConfigError(f"export meshes: --out must end in .ply, .obj or .glb, got {out.name!r}")
    if not (run / PERSONS_DIR).is_dir():
        raise ConfigError(f"{run}: no persons/ dataset here (give <output>/<scene> of a completed run)")
    table = read_persons(run / PERSONS_DIR)
    frames = table.column("frame_id").to_numpy(zero_copy_only=False)
    if args.frame not in set(frames):
        raise ConfigError(
            f"export meshes: no frame {args.frame!r} in {run}; frames: {', '.join(sorted(set(frames)))}"
        )
    rows = table.filter(pa.array(frames == args.frame)).sort_by("person_id")
    if args.people:
        rows = rows.take(_people_rows(args.people, rows.column("person_id").to_numpy(), args.frame))
    verts, faces = person_meshes(rows, BodyModel.load(args.body))
    write_meshes(out, verts, faces)
    order = f" (person_id {args.people}, in that order)" if args.people else ""
    print(f"wrote {out}: {len(rows)} people{order}, {verts.shape[1] * len(rows)} vertices")
    return EXIT_OK


def _cmd_draw(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from tasks.draw import DRAW_MAX_MEGAPIXELS, draw_scale, region_picture, write_png
    from tasks.export import read_persons
    from tasks.ingest import open_levels
    from tasks.models.body import BodyModel

    run = Path(args.run)
    store = run / args.frame / STORE_NAME
    if not (run / PERSONS_DIR).is_dir() or not store.is_dir():
        raise ConfigError(
            f"draw: {run} has no frame {args.frame!r} with a persons dataset (a completed run?)"
        )
    try:
        x0, y0, x1, y1 = (int(v) for v in args.region.split(","))
    except ValueError:
        raise ConfigError(
            f"draw: --region takes X0,Y0,X1,Y1 in full-resolution pixels, got {args.region!r}"
        ) from None
    level0 = open_levels(store)[0]
    h, w = level0.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) > 64_000_000:
        raise ConfigError(
            f"draw: region {args.region} is empty inside the {w}x{h} frame or above 64 megapixels"
        )
    k = draw_scale(x1 - x0, y1 - y0) if args.scale is None else args.scale
    if not 0 < k <= 64:
        raise ConfigError(f"draw: --scale must be above 0 and at most 64, got {args.scale}")
    size = (round((x1 - x0) * k), round((y1 - y0) * k))
    if size[0] * size[1] > DRAW_MAX_MEGAPIXELS * 1e6:
        raise ConfigError(
            f"draw: --scale {k:g} gives a {size[0]}x{size[1]} picture of the {x1 - x0}x{y1 - y0} region, "
            f"above {DRAW_MAX_MEGAPIXELS} megapixels: give a smaller --scale or region"
        )
    table = read_persons(run / PERSONS_DIR)
    rows = table.filter(pa.array(table.column("frame_id").to_numpy(zero_copy_only=False) == args.frame))
    picture, people = region_picture(level0, rows, (x0, y0, x1, y1), BodyModel.load(args.body), k)
    write_png(Path(args.out), picture)
    print(
        f"wrote {args.out}: {x1 - x0}x{y1 - y0} px at ({x0}, {y0}) drawn {k:g}x "
        f"({picture.shape[1]}x{picture.shape[0]}), {people} people"
    )
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from schemas.predict import PredictionsError, read_predictions
    from schemas.truth import TruthError, read_truth
    from tasks import InputError
    from tasks.evaluate import check_frames, evaluate, some_names, unpredicted_frames

    pred_path = Path(args.pred)
    if not pred_path.is_file():
        raise ConfigError(f"predictions file not found: {pred_path}")
    try:
        predictions = read_predictions(pred_path)
        truths: dict[str, Truth] = {}
        where: dict[str, Path] = {}
        for file in _truth_files(args.gt):
            truth = read_truth(file)
            for frame in truth.frame_info:
                if frame in truths:
                    raise ConfigError(f"frame {frame!r} is annotated twice: {where[frame]} and {file}")
                truths[frame], where[frame] = truth, file
        check_frames(predictions, truths)
    except (PredictionsError, TruthError, InputError) as e:
        raise ConfigError(str(e)) from None
    if missing := unpredicted_frames(predictions, truths):
        shown = some_names(missing, 5)
        print(f"warning: no prediction for {len(missing)} truth frame(s), scored 0: {shown}", file=sys.stderr)
    report = evaluate(predictions, truths, _load_body(args.body))
    print(report.table())
    if args.out:
        report.to_json(Path(args.out))
        print(f"report -> {args.out}")
    return EXIT_OK


def _add_run(sub: Any) -> None:
    """`run`"""
    p = sub.add_parser(
        "run",
        help="run a scene end to end (completed units are skipped)",
        description="Run every available stage of a scene; rerunning skips completed units.",
    )
    p.add_argument("scene", help="scene.yaml")
    p.add_argument("--output", help="override the scene's output directory")
    p.add_argument("--workers", type=int, help="override cluster.n_workers (local cluster)")
    p.set_defaults(func=_cmd_run)


def _add_validate(sub: Any) -> None:
    """`validate`"""
    p = sub.add_parser(
        "validate",
        help="check a scene.yaml and its inputs without running",
        description="Parse and check a scene.yaml: keys, values, input frames.",
    )
    p.add_argument("scene", help="scene.yaml")
    p.add_argument("--output", help="override the scene's output directory")
    p.set_defaults(func=_cmd_validate)


def _add_ingest(sub: Any) -> None:
    """`ingest`"""
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
    p.add_argument("--compressor", choices=["lz4", "zstd", "none"], help="chunk compressor (default zstd)")
    p.set_defaults(func=_cmd_ingest)


def _add_evaluate(sub: Any) -> None:
    """`evaluate`"""
    p = sub.add_parser(
        "evaluate",
        help="score a predict.json against ground truth (GigaCrowd metrics)",
        description="Score a GigaCrowd predict.json against truth.json files: per frame, per scene, overall.",
    )
    p.add_argument("--pred", required=True, help="predict.json")
    p.add_argument(
        "--gt",
        required=True,
        nargs="+",
        metavar="PATH",
        help="truth.json files or directories searched for them",
    )
    p.add_argument("--out", help="write the full report (per frame, matches) to this JSON file")
    p.add_argument(
        "--body",
        default="builtin:neutral",
        help="body model: builtin:<name> or an SMPL .pkl (default %(default)s)",
    )
    p.set_defaults(func=_cmd_evaluate)


def _add_synth(sub: Any) -> None:
    """`synth`"""
    p = sub.add_parser(
        "synth",
        help="generate a synthetic crowd frame with exact 3D truth",
        description="Lay out, render (JPEG or tiled TIFF) and annotate (truth.json) one synthetic frame.",
    )
    from schemas.scene import SyntheticConfig

    for name in SYNTH_OPTIONS:  # the scene key's own limits and description (input.synthetic)
        info = SyntheticConfig.model_fields[name]
        choices = get_args(info.annotation) if get_origin(info.annotation) is Literal else None
        kind = str if choices or name == "body" else type(info.default) if info.default is not None else float
        default = "" if info.default is None else f" (default {info.default})"
        p.add_argument(
            f"--{name.replace('_', '-')}", type=kind, choices=choices, help=f"{info.description}{default}"
        )
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_cmd_synth)


def _add_export(sub: Any) -> None:
    """`export gigacrowd|meshes`"""
    p = sub.add_parser("export", help="export a run's results", description="Export a run's results.")
    esub = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    p = esub.add_parser(
        "gigacrowd",
        help="predict.json for the GigaCrowd challenge",
        description="Write the GigaCrowd predict.json of a run's persons dataset (K from the run's camera, "
        "72 pose, 10 betas, trans_cam added to the scaled SMPL output, scale_smpl from the snap to the "
        "ground plane, neutral). The betas are the run's body's (builtin:neutral unless the scene set "
        "another): for the challenge, whose evaluator poses SMPL, give --body SMPL_NEUTRAL.pkl. A run whose "
        "latest attempt failed on some frames, or that holds no people, is refused.",
    )
    p.add_argument("run", help="the run's scene directory: <output>/<scene>")
    p.add_argument("--out", required=True, help="predict.json to write")
    p.add_argument(
        "--body",
        help="an SMPL-format model file (e.g. SMPL_NEUTRAL.pkl, which the challenge's evaluator poses): "
        "each person's betas are refitted in its shape space so its 24 rest joints and face keypoints "
        "match the run's body, pose kept, trans_cam moved so the pelvis stays put; residuals per person "
        "go to OUT with suffix .refit.json (default: the run's own betas, for the run's body)",
    )
    p.add_argument(
        "--scale",
        choices=("run", "one"),
        default="run",
        help="run (default): scale_smpl is the run's scale (1, or the crowd step's snap to the ground); "
        "one: scale_smpl 1 for everyone, trans_cam moved so each torso centre stays where it was "
        "(positions and depth order kept, each body at its own natural size)",
    )
    p.add_argument(
        "--allow-failed",
        action="store_true",
        dest="allow_failed",
        help="export a run whose latest attempt failed on some frames (they are left out and listed); "
        "without it such a run is refused",
    )
    p.set_defaults(func=_cmd_export_gigacrowd)
    p = esub.add_parser(
        "meshes",
        help="one mesh file (.ply/.obj/.glb) of a frame's people",
        description="Pose the body model for a frame's people (all, or --people) and write one mesh "
        "file in the camera frame (metres, OpenCV axes); the format follows --out's suffix.",
    )
    p.add_argument("run", help="the run's scene directory: <output>/<scene>")
    p.add_argument("--frame", required=True, help="frame name (a directory of the run)")
    p.add_argument(
        "--people",
        help="comma-separated person ids (the persons table's person_id, written on overlay.png and "
        "meshes.png), meshes in the order given (default: everyone, by person_id)",
    )
    p.add_argument("--body", default="builtin:neutral", help="body model (default %(default)s)")
    p.add_argument("--out", required=True, help="mesh file to write: .ply, .obj or .glb")
    p.set_defaults(func=_cmd_export_meshes)


def _add_draw(sub: Any) -> None:
    """`draw`"""
    p = sub.add_parser(
        "draw",
        help="meshes and skeletons over a full-resolution region of a frame",
        description="Draw a completed run's people (meshes, boxes, skeletons, person ids) over a region of "
        "a frame, read at full resolution from its pyramid (the run's overview pictures are thumbnails).",
    )
    p.add_argument("run", help="the run's scene directory: <output>/<scene>")
    p.add_argument("--frame", required=True, help="frame name (a directory of the run)")
    p.add_argument("--region", required=True, help="X0,Y0,X1,Y1 in full-resolution pixels")
    p.add_argument(
        "--scale",
        type=float,
        metavar="K",
        help="resize the region K times before drawing on it (default: the smallest whole K that gives "
        "the shorter side at least 800 px, e.g. 4 for a 380x210 region; 1 for regions already that "
        "large; the picture is at most 100 megapixels)",
    )
    p.add_argument("--body", default="builtin:neutral", help="body model (default %(default)s)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.set_defaults(func=_cmd_draw)


def _add_train(sub: Any) -> None:
    """`train regressor`"""
    p = sub.add_parser("train", help="train the project's own networks", description="Train a network.")
    tsub = p.add_subparsers(dest="network", required=True, metavar="NETWORK")
    p = tsub.add_parser(
        "regressor",
        help="the embedded keypoints-to-SMPL regressor, on synthetic people",
        description="Train the embedded regressor (tasks/train_regressor.py) and evaluate it on held-out "
        "clips with a seed training never uses; writes the weights and a JSON manifest beside them.",
    )
    p.add_argument("--out", required=True, help="weights file to write (.pt); the manifest goes beside it")
    p.add_argument("--steps", type=int, default=30000, help="optimiser steps")
    p.add_argument("--batch", type=int, default=256, help="people per step")
    p.add_argument("--lr", type=float, default=5e-4, help="AdamW's peak learning rate")
    p.add_argument("--width", type=int, default=512, help="hidden width of the network")
    p.add_argument("--blocks", type=int, default=2, help="residual blocks in the keypoint encoder")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout in the iterative regressor")
    p.add_argument("--seed", type=int, default=0, help="seed of the training people and the initial weights")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (results depend on it)")
    p.add_argument(
        "--eval-seed", type=int, default=12345, dest="eval_seed",
        help="seed of the held-out people (clips training never sees)",
    )  # fmt: skip
    p.add_argument(
        "--eval-people", type=int, default=4000, dest="eval_people", help="held-out people evaluated"
    )
    p.add_argument("--mode", choices=("keypoints", "image"), default="keypoints", help="network inputs")
    p.add_argument("--init", default=None, help="weights to start from (image mode: builtin:embedded-kp)")
    p.add_argument("--fp16", action="store_true", help="store the weights as float16")
    p.add_argument(
        "--activities", type=float, default=0.0,
        help="share of people seated, crouching, riding or jumping (tasks/scenery.py poses)",
    )  # fmt: skip
    p.add_argument("--children", type=float, default=0.0, help="share of people with a child's shape")
    p.set_defaults(func=_cmd_train_regressor)


# One example per command, printed at the end of its help.
EXAMPLES = {
    "run": "python -m pipeline run scenes/demo.yaml --workers 2",
    "validate": "python -m pipeline validate scenes/photo.yaml",
    "ingest": "python -m pipeline ingest frame.jpg --out stores/",
    "evaluate": "python -m pipeline evaluate --pred predict.json --gt runs/_synthetic/",
    "synth": "python -m pipeline synth --people 400 --seed 7 --preset plaza --out synth/",
    "export": "python -m pipeline export gigacrowd runs/demo --out predict.json",
    "export gigacrowd": "python -m pipeline export gigacrowd runs/demo --out predict.json",
    "export meshes": "python -m pipeline export meshes runs/demo --frame synth-seed3_000000 --people 3,1 "
    "--out people.glb",
    "draw": "python -m pipeline draw runs/demo --frame synth-seed3_000000 --region 8000,3000,8400,3300 "
    "--out close.png",
    "train": "python -m pipeline train regressor --out kp.pt --steps 30000",
    "train regressor": "python -m pipeline train regressor --out kp.pt --steps 30000",
}
EXIT_CODES = (
    "exit codes: 0 done; 1 a frame or the run failed (the others are kept; rerun to resume);\n"
    "            2 bad usage, configuration or input; 130 interrupted (completed units are kept)"
)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help with each option's default shown (when it has one) and epilogs kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings
            or any(action.default is v for v in (None, False, argparse.SUPPRESS))
        ):
            return text
        return f"{text} (default: %(default)s)"


def _subparsers(
    parser: argparse.ArgumentParser, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (command path, parser) below `parser`: "run", "export gigacrowd", ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{path} {name}".strip(), sub
                yield from _subparsers(sub, f"{path} {name}")


def _finish(parser: argparse.ArgumentParser) -> None:
    """What every command shares: defaults shown, an example, exit codes, and -v after the command."""
    for path, sub in _subparsers(parser):
        sub.formatter_class = _Formatter
        sub.epilog = f"example: {EXAMPLES[path]}\n{EXIT_CODES}"
        # SUPPRESS: a -v given before the command is not reset by the subcommand's default
        sub.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
        )


def build_parser() -> argparse.ArgumentParser:
    from importlib import metadata

    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="3D reconstruction of every person in gigapixel crowd photographs.",
        formatter_class=_Formatter,
        epilog=f"example: {EXAMPLES['run']}\n{EXIT_CODES}",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {metadata.version('gigacrowd-pipeline')}"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    adders = (
        _add_run,
        _add_validate,
        _add_ingest,
        _add_evaluate,
        _add_synth,
        _add_export,
        _add_draw,
        _add_train,
    )
    for add in adders:
        add(sub)
    _finish(parser)
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
