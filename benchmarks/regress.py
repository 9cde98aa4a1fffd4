"""The regress stage measured: held-out synthetic accuracy, real-photo reprojection OKS, throughput.

    python benchmarks/regress.py --held-out                       # synthetic people, held-out clips
    python benchmarks/regress.py --real ../shared/data/real       # COCO-17 fixtures, GT boxes, MoveNet
    python benchmarks/regress.py --speed                           # people/s against the bare model

Held-out: people drawn by tasks/train_regressor.sample from clips training never sees, with a seed it
never uses: MPJPE / PA-MPJPE (mm, 24 joints, pelvis-aligned) and root-depth error by crop band.
Real: each annotated person (>= 5 joints) of the COCO-17 fixtures (coco, ochuman): MoveNet keypoints on
the ground-truth box, the other annotated people painted out as the pose2d stage does by default
(`--no-mask-others`: plain crops) -> regressor -> COCO-17 of the body model, projected with
f = image diagonal -> OKS against the human annotation (box area); MoveNet's own OKS alongside (the
regressor's input).
Speed: tasks/regress.regress over 4096 boxes (1024 for an image-mode model, whose crops it cuts from
a frame in memory) against the bare network on the same batches (given the crops already cut).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"


def held_out(model_spec: str, people: int, seed: int) -> dict[str, object]:
    from tasks.models.body import BodyModel
    from tasks.models.embedded import load_embedded
    from tasks.train_regressor import evaluate, held_out_poses

    model = load_embedded(model_spec)
    m = evaluate(model, BodyModel.load("builtin:neutral"), held_out_poses(), seed=seed, people=people)
    return {"bands": m.bands, "b>=100": m.large}


def real(root: Path, model_spec: str, mask_others: bool = True) -> dict[str, object]:
    from tasks.evaluate import oks_matrix
    from tasks.models.body import BodyModel
    from tasks.models.embedded import load_embedded
    from tasks.models.movenet import MoveNet
    from tasks.pose2d import estimate
    from tasks.regress import regress

    pose, model = MoveNet.load(), load_embedded(model_spec)
    body = BodyModel.load("builtin:neutral")
    out: dict[str, object] = {}
    for name in ("coco", "ochuman"):
        js = next((root / "coco_keypoints" / name).glob("*.json"))
        d = json.loads(js.read_text())
        ours, inputs, heights = [], [], []
        for img in d["images"]:
            image = cv2.imread(str(js.parent / img["file_name"]))[..., ::-1].copy()
            people = [a for a in d["annotations"] if a["image_id"] == img["id"] and not a.get("iscrowd", 0)]
            anns = [a for a in people if a.get("num_keypoints", 0) >= 5]
            if not anns:
                continue
            boxes, everyone = (
                np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                           a["bbox"][1] + a["bbox"][3]] for a in group])
                for group in (anns, people)
            )  # fmt: skip
            gt = np.array([a["keypoints"] for a in anns], float).reshape(-1, 17, 3)
            # pose2d.mask_others (the stage's default): the other annotated people painted out
            kp = estimate([image], boxes, pose, context=everyone if mask_others else None)
            h, w = image.shape[:2]
            r = regress([image], boxes, kp, model, (w, h))  # an image-mode model reads its crops
            _, _, coco = body.numpy_forward(r.pose, r.betas, r.transl)
            proj = r.focal[0] * coco[..., :2] / coco[..., 2:] + r.pp
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            target = np.where(gt[..., 2:] > 0, gt[..., :2], np.nan)
            for i in range(len(anns)):
                ours.append(oks_matrix(proj[i : i + 1], target[i : i + 1], area[i : i + 1])[0, 0])
                inputs.append(oks_matrix(kp[i : i + 1, :, :2], target[i : i + 1], area[i : i + 1])[0, 0])
                heights.append(boxes[i, 3] - boxes[i, 1])
        ours_a, inp_a, h_a = np.array(ours), np.array(inputs), np.array(heights)
        big = h_a >= 100
        out[name] = {
            "people": len(ours_a), "oks_mean": float(ours_a.mean()), "oks_median": float(np.median(ours_a)),
            "movenet_oks_mean": float(inp_a.mean()), "people_100px": int(big.sum()),
            "oks_mean_100px": float(ours_a[big].mean()) if big.any() else None,
            "movenet_oks_mean_100px": float(inp_a[big].mean()) if big.any() else None,
        }  # fmt: skip
    return out


def speed(
    model_spec: str, n: int = 4096, batch: int = 32, repeats: int = 5, threads: int = 1
) -> dict[str, float]:
    """The stage against the bare network with `threads` torch threads. 1 is what a Dask worker runs
    with (distributed's nanny sets OMP_NUM_THREADS=1): the stage's crop thread then has the other core."""
    from tasks.models.embedded import load_embedded

    torch.set_num_threads(threads)
    from tasks.regress import box_inputs, cut_crops, normalise_crops, regress

    model = load_embedded(model_spec)
    if model.uses_image:  # crops are cut from a 8192 x 4096 frame in memory: 1024 people are enough
        n = min(n, 1024)
    wh = (8192, 4096) if model.uses_image else (20000, 10000)
    rng = np.random.default_rng(7)
    frame = [rng.integers(0, 256, (wh[1], wh[0], 3), dtype=np.uint8)] if model.uses_image else None
    boxes = np.concatenate([rng.uniform(0, 0.9, (n, 2)) * wh, np.zeros((n, 2))], 1)
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(40, 400, (n, 1)) * [0.4, 1.0]
    kp = np.concatenate(
        [rng.uniform(boxes[:, None, :2], boxes[:, None, 2:], (n, 17, 2)), np.ones((n, 17, 1))], -1
    )
    x = box_inputs(boxes, kp, float(np.hypot(*wh)), (wh[0] / 2, wh[1] / 2))
    crops = None
    if frame is not None:  # the bare model is given the crops already cut and normalised
        crops = normalise_crops(cut_crops(frame, boxes))
    bare, stage = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, n, batch):
                part = slice(i, i + batch)
                model.predict(
                    None if crops is None else crops[part], x.keypoints[part], x.info[part], x.b[part]
                )
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        regress(frame, boxes, kp, model, wh, batch=batch)
        stage.append(time.perf_counter() - t)
    return {
        "people": n, "batch": batch, "torch_threads": threads, "bare_people_per_s": n / min(bare),
        "stage_people_per_s": n / min(stage), "ratio": min(bare) / min(stage),
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin:embedded-kp")
    ap.add_argument("--held-out", action="store_true", dest="held_out")
    ap.add_argument("--people", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--real", type=Path, help="folder with coco_keypoints/")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument(
        "--no-mask-others", action="store_true",
        help="--real: MoveNet on plain crops (pose2d.mask_others false) instead of the stage's default",
    )  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(2)
    result: dict[str, object] = {}
    if args.held_out:
        result["held_out"] = held_out(args.model, args.people, args.seed)
    if args.real:
        result["real"] = real(args.real, args.model, not args.no_mask_others)
    if args.speed:
        result["speed"] = [speed(args.model, threads=t) for t in (1, 2)]
    if not result:
        ap.error("choose at least one of --held-out, --real, --speed")
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "regress.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
