"""The reduce step measured on synthetic crowds: before finetuning, `crowdrec`, `global`.

    python benchmarks/crowd.py [--people 100 500 2000] [--model builtin:embedded-kp] [--focal estimate]
    python benchmarks/crowd.py --people --photos ../shared/data/real/publicdomain   # photos only
    python benchmarks/crowd.py --pipeline --people 100 500 2000   # the whole pipeline, detected boxes

Per frame (tasks/synth.layout: people on one ground plane seen by one camera, no rendering needed):
ground-truth boxes (the mesh's), COCO-17 keypoints with detector-like noise (Gaussian jitter of 2% of
the box height, 5% of joints dropped), the embedded regressor, focal = image diagonal (the pipeline's
`auto`; the true focal is 1.1-1.5x that), or with --focal estimate the focal tasks/camera.py finds
from the keypoints (the diagonal where it finds none), or --focal true the truth's. Scored with the
GigaCrowd evaluator (tasks/evaluate.py):
PA-PPDS, SS, PCOD, OKS, RP, score; plus network evaluations (people forwarded) and wall time.
Loss curves are written to benchmarks/results/crowd_curves.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
SIZES = {100: (4096, 2048), 500: (8192, 4096), 2000: (16384, 8192)}


def frame(people: int, seed: int, preset: str = "plaza") -> dict[str, object]:
    from schemas.scene import SyntheticConfig
    from tasks.models.body import BodyModel
    from tasks.poses import load_bank
    from tasks.synth import keypoint_frame

    w, h = SIZES.get(people, (16384, 8192))
    f = keypoint_frame(
        SyntheticConfig(people=people, width=w, height=h, seed=seed, preset=preset),
        load_bank(),
        BodyModel.load("builtin:neutral"),
    )
    return {
        "boxes": f.boxes, "kp": f.kp, "size": (w, h), "gt_kp2d": f.gt_kp2d,
        "gt_torso": f.gt_torso, "gt_plane": f.gt_plane, "true_focal": f.camera.f, "support": f.support,
        "stature": f.stature,
    }  # fmt: skip


def score(fit: object, f: dict[str, object], focal: float) -> dict[str, float]:
    import roma

    from tasks.evaluate import TORSO_JOINTS, evaluate_frame
    from tasks.models.body import BodyModel

    body = BodyModel.load("builtin:neutral")
    aa = roma.rotmat_to_rotvec(fit.rotmat).reshape(-1, 72).numpy()  # type: ignore[attr-defined]
    scale = None if fit.scale is None else fit.scale.numpy()  # type: ignore[attr-defined]
    _, joints, coco = body.numpy_forward(aa, fit.betas.numpy(), fit.transl.numpy(), scale=scale)  # type: ignore[attr-defined]
    w, h = f["size"]  # type: ignore[misc]
    K = np.array([[focal, 0, w / 2], [0, focal, h / 2], [0, 0, 1.0]])
    torso = joints[:, TORSO_JOINTS].mean(1)
    s = evaluate_frame(coco, torso, K, f["gt_kp2d"], f["boxes"], f["gt_torso"], f["gt_plane"])  # type: ignore[arg-type]
    out: dict[str, object] = {k: round(float(v), 4) for k, v in s.metrics().items()}
    stature = body.statures(fit.betas.numpy()) * (1.0 if scale is None else scale.reshape(-1))  # type: ignore[attr-defined]
    return out | {"by_support": by_support(torso, stature, getattr(fit, "support", None), f)}


def by_support(torso: np.ndarray, stature: np.ndarray, judged: np.ndarray | None,
               f: dict[str, object]) -> dict[str, dict[str, float]]:  # fmt: skip
    """Per truth support class (ground-truth boxes: person i is truth i): people, median relative
    torso-depth error and stature error, the share within tasks/support.py's plausible statures, and
    the share whose support judgement (standing on a floor or not) matches the truth's; also for the
    people under 1.5 m and for everyone. torso (N, 3) m,
    stature (N,) m, judged (N,) support labels or None (no crowd step)."""
    from tasks.support import PLAUSIBLE_STATURE_M

    truth = np.asarray(f["support"]).astype(str)
    gt_z, gt_stature = np.asarray(f["gt_torso"])[:, 2], np.asarray(f["stature"])
    depth_err = np.abs(torso[:, 2] - gt_z) / gt_z
    stature_err = np.abs(stature - gt_stature) / gt_stature
    on_floor = np.char.startswith(truth, "floor") | np.char.startswith(truth, "level_")
    short = gt_stature < 1.5  # the children, and short adults
    groups = {c: truth == c for c in np.unique(truth)}
    groups |= {"under_1.5m": short, "all": np.ones(len(truth), bool)}
    out = {}
    for name, m in groups.items():
        if not m.any():
            continue
        row = {"people": int(m.sum()), "depth_err": round(float(np.median(depth_err[m])), 4),
               "stature_err": round(float(np.median(stature_err[m])), 4),
               "plausible": round(float(((stature[m] >= PLAUSIBLE_STATURE_M[0])
                                         & (stature[m] <= PLAUSIBLE_STATURE_M[1])).mean()), 4)}  # fmt: skip
        if judged is not None:
            said = np.array([str(j) == "floor" or str(j).startswith("level_") for j in judged])
            row["judged_right"] = round(float((said[m] == on_floor[m]).mean()), 4)
        out[name] = row
    return out


def run(
    people: int, seed: int, model_spec: str, focal_mode: str = "diagonal", normals: bool = False,
    methods: tuple[str, ...] = ("crowdrec", "global"), preset: str = "plaza",
) -> tuple[dict[str, object], dict[str, list[float]]]:  # fmt: skip
    from schemas.scene import CrowdConfig
    from tasks.camera import estimate_camera
    from tasks.crowd import crowd_method, finetune, keypoint_people, predict_all
    from tasks.models.body import BodyModel
    from tasks.models.embedded import load_embedded

    f = frame(people, seed, preset)
    w, h = f["size"]  # type: ignore[misc]
    focal, focal_known = float(np.hypot(w, h)), focal_mode == "true"
    if focal_mode == "true":
        focal = float(f["true_focal"])  # type: ignore[arg-type]
    elif focal_mode == "estimate":
        est = estimate_camera(f["kp"], (w, h))  # type: ignore[arg-type]
        focal, focal_known = (est.focal, True) if est is not None else (focal, False)
    body = BodyModel.load("builtin:neutral")
    model = load_embedded(model_spec)
    ppl = keypoint_people(f["boxes"], f["kp"], focal, (w / 2, h / 2))  # type: ignore[arg-type]
    out: dict[str, object] = {
        "people": people, "seed": seed, "preset": preset, "model": model_spec, "size": f"{w}x{h}",
        "focal_mode": focal_mode,
        "focal_over_true": round(focal / float(f["true_focal"]), 4),  # type: ignore[arg-type]
    }  # fmt: skip
    curves: dict[str, list[float]] = {}
    t = time.perf_counter()
    before = predict_all(model, ppl, body)
    out["before"] = {**score(before, f, focal), "evaluations": before.evaluations,
                     "seconds": round(time.perf_counter() - t, 2)}  # fmt: skip
    variants = [(m, m, "auto") for m in methods]
    if normals and "global" in methods:
        variants += [("global:people", "global", "people"), ("global:camera", "global", "camera")]
    for label, method, normal in variants:
        cfg = CrowdConfig.model_validate({"method": method, "global": {"normal": normal}})
        t = time.perf_counter()
        chosen = crowd_method(cfg)
        source = chosen.prepare(ppl, (w, h), focal_known).get("ground_normal")  # the pipeline's preparation
        fit = finetune(model, ppl, body, chosen, seed=seed)
        seconds = round(time.perf_counter() - t, 2)
        out[label] = {**score(fit, f, focal), "evaluations": fit.evaluations, "seconds": seconds,
                      "iterations": len(fit.curve)} | ({"normal": source} if source else {})  # fmt: skip
        curves[f"{people}/{label}"] = fit.curve
    return out, curves


def photos(folder: Path) -> dict[str, object]:
    """The whole pipeline (default settings) on every JPEG of `folder`; per photo, the robust spread
    (1.4826 MAD, m) of the feet about the plane fitted to them, before and after the crowd step, and
    the median keypoint error (box units) before and after."""
    import tempfile

    import yaml

    from pipeline.config import load_scene, resolve
    from pipeline.run import run_scene

    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        scene = Path(tmp) / "photos.yaml"
        frames = sorted(str(p.resolve()) for p in folder.glob("*.jpg"))
        scene.write_text(yaml.safe_dump({"name": "photos", "input": {"frames": frames}, "output": tmp}))
        summary = run_scene(resolve(load_scene(scene), scene))
        for name, why in summary.failed.items():
            out[name] = {"failed": why}
        for report in sorted(Path(tmp, "photos").glob("*/crowd.json")):
            r = json.loads(report.read_text())
            out[report.parent.name] = {
                "people": r["people"], "feet_spread_m": r["feet_spread_m"],
                "keypoint_error_median": r["keypoint_error_median"], "seconds": r["seconds"],
            }  # fmt: skip
    return out


def full_pipeline(
    people: int, seed: int, cache: Path, focal_mode: str = "diagonal",
    methods: tuple[str, ...] = ("crowdrec", "global"), mask_others: bool = True,
    nms_iou: float | None = None,
) -> dict[str, object]:  # fmt: skip
    """The whole pipeline (detected boxes, MoveNet keypoints, the embedded regressor) on a rendered
    synthetic frame of `people` (SIZES), once without the crowd step, then with `crowdrec`, then with
    `global`, in one run directory (the stages before the crowd step run once); each scored with the
    GigaCrowd evaluator against the frame's truth. focal_mode: camera.focal auto (diagonal), estimate,
    or the truth's focal given (true)."""
    import tempfile

    import pyarrow.parquet as pq
    import yaml
    from common import cached_frame

    from pipeline.config import load_scene, resolve
    from pipeline.run import run_scene
    from schemas.layout import CROWD_REPORT, PERSONS_DIR, persons_file
    from schemas.truth import read_truth
    from tasks.evaluate import evaluate
    from tasks.export import gigacrowd_frame
    from tasks.models.body import BUILTIN_NEUTRAL, body_fn

    w, h = SIZES.get(people, (16384, 8192))
    image, truth_file = cached_frame(cache / f"crowd-{w}x{h}-{people}-{seed}", people, w, h, seed)
    truth = read_truth(truth_file)
    out: dict[str, object] = {"people": people, "seed": seed, "size": f"{w}x{h}", "focal_mode": focal_mode}
    focal: object = {"diagonal": "auto", "estimate": "estimate"}.get(focal_mode)
    if focal is None:
        focal = float(truth.arrays().K[0, 0])
    with tempfile.TemporaryDirectory() as tmp:
        scene = Path(tmp) / "crowd.yaml"
        for label, crowd in [("before", {"enabled": False})] + [(m, {"method": m}) for m in methods]:
            doc = {"name": "crowd", "input": {"frames": str(image)}, "output": tmp, "seed": seed,
                   "camera": {"focal": focal},
                   "crowd": crowd, "pose2d": {"overlay": False, "mask_others": mask_others},
                   "regress": {"meshes": False}}  # fmt: skip
            if nms_iou is not None:
                doc["detect"] = {"nms_iou": nms_iou}
            scene.write_text(yaml.safe_dump(doc))
            t = time.perf_counter()
            summary = run_scene(resolve(load_scene(scene), scene))
            if not summary.ok:
                raise SystemExit(f"{label}: {summary.failed}")
            seconds = round(time.perf_counter() - t, 1)
            rows = pq.read_table(persons_file(Path(tmp) / "crowd" / PERSONS_DIR, image.stem))
            report = evaluate(
                {image.name: gigacrowd_frame(rows)}, {image.name: truth}, body_fn(BUILTIN_NEUTRAL)
            )
            res: dict[str, object] = {k: round(float(v), 4) for k, v in report.overall.means.items()}
            res["seconds"] = seconds
            if label != "before":
                cj = json.loads((Path(tmp) / "crowd" / image.stem / CROWD_REPORT).read_text())
                res |= {"evaluations": cj["evaluations"], "iterations": cj["iterations"],
                        "crowd_seconds": cj["seconds"], "detected": cj["people"],
                        "focal_source": cj["camera"].get("focal_source"),
                        "normal": cj.get("ground_normal")}  # fmt: skip
            out[label] = res
            print(json.dumps({label: res}), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, nargs="*", default=[100, 500, 2000])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument(
        "--preset", choices=("plaza", "stadium_entrance", "park"), default="plaza",
        help="the synthetic world (input.synthetic.preset; not with --pipeline)",
    )  # fmt: skip
    ap.add_argument("--model", default="builtin:embedded-kp")
    ap.add_argument("--photos", type=Path, help="also run the pipeline on these photos (a folder of JPEGs)")
    ap.add_argument(
        "--focal", choices=("diagonal", "estimate", "true"), default="diagonal",
        help="the focal the people are reconstructed with: the image diagonal (camera.focal auto), "
        "estimated from the keypoints (camera.focal estimate), or the truth's",
    )  # fmt: skip
    ap.add_argument(
        "--methods", nargs="+", choices=("crowdrec", "global"), default=["crowdrec", "global"],
        help="the procedures to run after `before` (crowdrec is the slow one)",
    )  # fmt: skip
    ap.add_argument(
        "--normals", action="store_true",
        help="also `global` with each source of the ground's direction (crowd.global.normal people, camera)",
    )  # fmt: skip
    ap.add_argument(
        "--no-mask-others", action="store_false", dest="mask_others",
        help="with --pipeline: pose2d.mask_others false (default true: the other detections painted out "
        "of each crop)",
    )  # fmt: skip
    ap.add_argument(
        "--nms-iou", type=float, default=None, dest="nms_iou",
        help="with --pipeline: detect.nms_iou (default: the setting's default)",
    )  # fmt: skip
    ap.add_argument(
        "--pipeline", action="store_true",
        help="instead: the whole pipeline (detected boxes) on rendered frames of --people, before / "
        "crowdrec / global (frames cached in ~/.cache/gigacrowd-bench/crowd)",
    )  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.pipeline:
        cache = Path.home() / ".cache" / "gigacrowd-bench" / "crowd"
        result = [
            full_pipeline(
                n, args.seed, cache, args.focal, tuple(args.methods), args.mask_others, args.nms_iou
            )
            for n in args.people
        ]
        RESULTS.mkdir(exist_ok=True)
        tag = "" if args.focal == "diagonal" else f"_{args.focal}"
        tag += "" if args.mask_others else "_unmasked"
        tag += "" if args.nms_iou is None else f"_nms{args.nms_iou}"
        (RESULTS / f"crowd_pipeline{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
        return 0
    if args.photos:
        result = photos(args.photos)
        print(json.dumps(result, indent=1))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "crowd_photos.json").write_text(json.dumps(result, indent=2) + "\n")
        if not args.people:
            return 0
    rows, curves = [], {}
    for n in args.people:
        row, c = run(n, args.seed, args.model, args.focal, args.normals, tuple(args.methods), args.preset)
        rows.append(row)
        curves.update(c)
        print(json.dumps(row), flush=True)
    RESULTS.mkdir(exist_ok=True)
    tag = "" if args.focal == "diagonal" else f"_{args.focal}"
    tag += "" if args.preset == "plaza" else f"_{args.preset}"
    (RESULTS / f"crowd{tag}.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / f"crowd_curves{tag}.json").write_text(json.dumps(curves) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
