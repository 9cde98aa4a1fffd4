"""Detection and 2D pose measured on real annotated photographs and on a synthetic frame.

    python benchmarks/detect_pose.py --real ../shared/data/real      # COCO / OCHuman / CrowdPose fixtures
    python benchmarks/detect_pose.py --real ../shared/data/real --synthetic 8192x4096

Real data (COCO-format json + images under DIR/coco_keypoints/*; DIR/publicdomain/*.jpg):
- detection recall (IoU >= 0.5) against every annotated person box, and precision (matched / kept
  detections; fixtures need not annotate every person, so it is a lower bound), through the detect
  stage's own tile plan and merge;
- MoveNet mean OKS (box area, annotated joints) with the ground-truth boxes and with the matched
  detected boxes, COCO-17 sets only (coco, ochuman), each crop with the other people's boxes painted
  out as the pose2d stage does by default (the other annotated boxes, or the other detections;
  `--no-mask-others`: plain crops);
- people found in each public-domain crowd photograph (no annotations there).
Synthetic (`--synthetic WxH`): recall by person-height band with the multi-scale tile plan, against the
whole frame resized to the detector input once (what a plain detector call does).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from schemas.layout import STORE_NAME

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BANDS = [(0, 50), (50, 100), (100, 200), (200, 400), (400, float("inf"))]


def _rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path))[..., ::-1].copy()


def real(root: Path, mask_others: bool = True) -> dict[str, object]:
    from tasks.boxes import greedy_recall_match
    from tasks.detect import detect_image
    from tasks.models.movenet import MoveNet
    from tasks.models.yolox_onnx import YoloxOnnx
    from tasks.realism import pose_oks

    detector, pose = YoloxOnnx.load(), MoveNet.load()
    out: dict[str, object] = {}
    for js in sorted((root / "coco_keypoints").glob("*/*.json")):
        d = json.loads(js.read_text())
        coco17 = len(d["categories"][0].get("keypoints", [])) == 17
        n_gt = n_det = n_hit = 0
        oks_gt: list[float] = []
        oks_det: list[float] = []
        for img in d["images"]:
            image = _rgb(js.parent / img["file_name"])
            anns = [a for a in d["annotations"] if a["image_id"] == img["id"] and not a.get("iscrowd", 0)]
            gt = np.array(
                [
                    [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                    for a in anns
                ]
            )
            dets = detect_image(image, detector, prune=True)
            m = greedy_recall_match(dets[:, :4], gt)
            n_gt, n_det, n_hit = n_gt + len(gt), n_det + len(dets), n_hit + int((m >= 0).sum())
            if not coco17:
                continue
            # pose2d.mask_others: the stage paints out the frame's other boxes (its detections); with
            # ground-truth boxes the other annotated people's boxes play that part.
            gt_context = gt if mask_others and len(gt) else None
            det_context = dets[:, :4] if mask_others and len(dets) else None
            for a, box, j in zip(anns, gt, m, strict=True):
                if a.get("num_keypoints", 0) < 5:
                    continue
                kp = np.asarray(a["keypoints"], float).reshape(17, 3)
                oks_gt.append(
                    pose_oks(image, box[None], kp[None, :, :2], kp[None, :, 2], pose, gt_context)[0]
                )
                if j >= 0:
                    oks_det.append(
                        pose_oks(
                            image, dets[j, None, :4], kp[None, :, :2], kp[None, :, 2], pose, det_context
                        )[0]
                    )
        out[js.parent.name] = {
            "images": len(d["images"]), "people": n_gt, "detections": n_det,
            "recall": n_hit / max(n_gt, 1), "precision": n_hit / max(n_det, 1),
            "oks_gt_boxes": float(np.mean(oks_gt)) if oks_gt else None, "posed_gt": len(oks_gt),
            "oks_detected_boxes": float(np.mean(oks_det)) if oks_det else None, "posed_det": len(oks_det),
        }  # fmt: skip
    photos = sorted((root / "publicdomain").glob("*.jpg"))
    for prune in (True, False):
        found = {p.name: len(detect_image(_rgb(p), detector, prune=prune)) for p in photos}
        out[f"publicdomain_people_found{'' if prune else '_unpruned'}"] = found
    return out


def synthetic(
    size: str, people: int, seed: int, min_person: float | None = None, camera: dict[str, float] | None = None
) -> dict[str, object]:
    from schemas.scene import SyntheticConfig
    from schemas.truth import read_truth
    from tasks.boxes import greedy_recall_match
    from tasks.detect import detect_image
    from tasks.models.body import BUILTIN_NEUTRAL, BodyModel
    from tasks.models.yolox_onnx import YoloxOnnx
    from tasks.poses import load_bank
    from tasks.realism import recall_by_height
    from tasks.synth import synthesize

    w, h = (int(v) for v in size.lower().split("x"))
    detector = YoloxOnnx.load()
    with tempfile.TemporaryDirectory() as wd:
        cfg = SyntheticConfig(people=people, width=w, height=h, seed=seed, **(camera or {}))
        image_path, truth_path = synthesize(cfg, Path(wd), BodyModel.load(BUILTIN_NEUTRAL), load_bank())
        image, a = _rgb(image_path), read_truth(truth_path).arrays()
    calls = [0]

    def counted(images: list[np.ndarray]) -> list[np.ndarray]:
        calls[0] += len(images)
        return detector(images)

    runs = {}
    variants = [("multi-scale tiles", False, None), ("multi-scale, ground-pruned", True, None)]
    if min_person is not None:
        variants += [(f"{name}, min_person {min_person:g}", prune, min_person) for name, prune, _ in variants]
    for name, prune, smallest in variants:
        calls[0] = 0
        t = time.perf_counter()
        dets = detect_image(image, counted, prune=prune, min_person=smallest)
        runs[name] = (dets, time.perf_counter() - t, calls[0])
    t = time.perf_counter()
    whole = detector([image])[0]  # letterboxed to 416 once
    runs["whole frame at 416"] = (whole, time.perf_counter() - t, 1)
    rows = []
    for name, (dets, seconds, tiles) in runs.items():
        m = greedy_recall_match(dets[:, :4], a.bbox)
        bands = recall_by_height(dets, a.bbox, BANDS)
        rows.append({"method": name, "detections": len(dets), "recall": float(np.mean(m >= 0)),
                     "precision": float((m >= 0).sum() / max(len(dets), 1)), "bands": bands,
                     "seconds": seconds, "tiles": tiles})  # fmt: skip
    return {"size": size, "people": people, "seed": seed, "rows": rows}


def speed(size: str, people: int, seed: int, repeats: int = 5) -> dict[str, float]:
    """Stage cost vs bare model cost on the same work, one process, one thread (= one Dask worker)."""
    from pipeline.stages import detect_batch_unit, pose_batch_unit
    from schemas.scene import DetectConfig, IngestConfig, Pose2dConfig, SyntheticConfig
    from tasks.detect import merge, read_tile, tile_plan
    from tasks.ingest import ingest_image, open_levels
    from tasks.models.body import BUILTIN_NEUTRAL, BodyModel
    from tasks.models.movenet import MoveNet
    from tasks.models.registry import load_detector
    from tasks.models.yolox_onnx import letterbox
    from tasks.pose2d import crop_from_levels
    from tasks.poses import load_bank
    from tasks.synth import synthesize

    w, h = (int(v) for v in size.lower().split("x"))
    with tempfile.TemporaryDirectory() as wd:
        cfg = SyntheticConfig(people=people, width=w, height=h, seed=seed)
        image, _ = synthesize(cfg, Path(wd), BodyModel.load(BUILTIN_NEUTRAL), load_bank())
        store = Path(wd) / STORE_NAME
        ingest_image(image, store, IngestConfig())
        levels = open_levels(store)
        det_cfg, pose_cfg = DetectConfig(), Pose2dConfig()
        model = load_detector(det_cfg.backend, det_cfg.model, det_cfg.input_size, det_cfg.device)
        tiles = tile_plan(h, w, model.size)
        pose = MoveNet.load()
        # bare: only the network calls, on inputs prepared beforehand; best of `repeats`, alternating
        inputs = [letterbox(read_tile(levels, t), model.size)[0][None] for t in tiles]
        kept = merge(np.concatenate([detect_batch_unit(str(store), tiles, det_cfg)]), tiles)
        crops = np.stack([crop_from_levels(levels, b, pose.size)[0] for b in kept[:, :4]])
        times: dict[str, list[float]] = {
            "bare_detect": [],
            "stage_detect": [],
            "bare_pose": [],
            "stage_pose": [],
            "stage_pose_masked": [],
        }
        for _ in range(repeats):
            t = time.perf_counter()
            for x in inputs:
                model.raw(x)
            times["bare_detect"].append(time.perf_counter() - t)
            t = time.perf_counter()
            raw = [
                detect_batch_unit(str(store), tiles[i : i + 64], det_cfg) for i in range(0, len(tiles), 64)
            ]
            merge(np.concatenate(raw), tiles)
            times["stage_detect"].append(time.perf_counter() - t)
            t = time.perf_counter()
            pose(crops)
            times["bare_pose"].append(time.perf_counter() - t)
            t = time.perf_counter()
            for i in range(0, len(kept), 256):
                pose_batch_unit(str(store), kept[i : i + 256, :4], pose_cfg)
            times["stage_pose"].append(time.perf_counter() - t)
            t = time.perf_counter()  # pose2d.mask_others: the frame's other boxes painted out of each crop
            for i in range(0, len(kept), 256):
                pose_batch_unit(str(store), kept[i : i + 256, :4], pose_cfg, kept[:, :4])
            times["stage_pose_masked"].append(time.perf_counter() - t)
        bare_detect, stage_detect = min(times["bare_detect"]), min(times["stage_detect"])
        bare_pose, stage_pose = min(times["bare_pose"]), min(times["stage_pose"])
    return {
        "tiles": len(tiles), "boxes": len(kept), "bare_detect_s": bare_detect, "stage_detect_s": stage_detect,
        "detect_ratio": stage_detect / bare_detect, "bare_pose_s": bare_pose, "stage_pose_s": stage_pose,
        "pose_throughput_ratio": bare_pose / stage_pose,
        "stage_pose_masked_s": min(times["stage_pose_masked"]),
        "pose_masked_throughput_ratio": bare_pose / min(times["stage_pose_masked"]),
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, help="folder with coco_keypoints/ and publicdomain/")
    ap.add_argument("--synthetic", default=None, help="WxH of a synthetic frame to score, e.g. 8192x4096")
    ap.add_argument("--people", type=int, default=300)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument(
        "--min-person", type=float, default=None, help="--synthetic: also run with this min_person"
    )
    ap.add_argument("--focal-factor", type=float, default=None, help="--synthetic: focal / diagonal")
    ap.add_argument("--camera-height", type=float, default=None, help="--synthetic: camera height, metres")
    ap.add_argument(
        "--speed", default=None, help="WxH: stage vs bare-model time on an ingested synthetic frame"
    )
    ap.add_argument(
        "--no-mask-others", action="store_true",
        help="--real: MoveNet on plain crops (pose2d.mask_others false) instead of the stage's default",
    )  # fmt: skip
    args = ap.parse_args()
    res: dict[str, object] = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if args.real:
        res["real"] = r = real(args.real, not args.no_mask_others)
        for name, v in r.items():
            print(f"{name}: {v}")
    if args.synthetic:
        given = (("focal_factor", args.focal_factor), ("camera_height", args.camera_height))
        camera = {k: v for k, v in given if v is not None}
        res["synthetic"] = s = synthetic(args.synthetic, args.people, args.seed, args.min_person, camera)
        for row in s["rows"]:  # type: ignore[index]
            bands = ", ".join(
                f"{k} px: {n} @ {r:.2f}" if r is not None else f"{k} px: 0"
                for k, (n, r) in row["bands"].items()
            )
            print(
                f"{row['method']}: {row['tiles']} tiles, {row['seconds']:.1f} s, recall {row['recall']:.3f}, "
                f"precision {row['precision']:.3f} ({bands})"
            )
    if args.speed:
        res["speed"] = sp = speed(args.speed, args.people, args.seed)
        print(
            f"detect: {sp['tiles']} tiles, stage {sp['stage_detect_s']:.1f} s vs bare model "
            f"{sp['bare_detect_s']:.1f} s "
            f"-> {sp['detect_ratio']:.2f}x (target <= 1.15); pose2d: {sp['boxes']} boxes, stage "
            f"{sp['stage_pose_s']:.2f} s vs bare {sp['bare_pose_s']:.2f} s -> throughput "
            f"{sp['pose_throughput_ratio']:.2f}x (target >= 0.85); with pose2d.mask_others "
            f"{sp['stage_pose_masked_s']:.2f} s -> {sp['pose_masked_throughput_ratio']:.2f}x"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "detect_pose.json").write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
