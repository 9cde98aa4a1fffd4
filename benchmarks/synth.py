"""Synthetic frames: render time and peak memory at gigapixel scale, and how real they look to real networks.

    python benchmarks/synth.py render                       # 0.5 GP (31744 x 15872), 1000 people
    python benchmarks/synth.py render --size 16384x8192 --people 500
    python benchmarks/synth.py realism                      # 3 seeds, 8192 x 4096, 300 people each
    python benchmarks/synth.py realism --presets plaza stadium_entrance park   # per synthetic world
    python benchmarks/synth.py pose-errors --people 400 800 2000   # MoveNet in crowds (issue #24)
    python benchmarks/synth.py pose-errors --mask-others           # ... with neighbours painted out

`render` times `tasks.synth.synthesize` in a fresh process (layout, body geometry, tile rendering, JPEG
encode, truth) and reports its peak RSS. Target (issue #3): 0.5 GP with 1000 people in <= 10 min on
2 cores with peak RSS <= 2 GB.

`realism` renders frames and runs the shipped YOLOX-Nano over them exactly as the detect stage tiles
a frame, and the shipped MoveNet on ground-truth-box crops (tasks/realism.py). Target: recall >= 0.8 for
people >= 100 px tall. With `--real DIR` it also scores MoveNet on real COCO-format annotated photos
(e.g. ../shared/data/real/coco_keypoints/coco) as the reference for the OKS on renders.

`pose-errors` renders frames of 400 / 800 / 2000 people (8192x4096, 8192x4096, 16384x8192) and runs
MoveNet on every ground-truth box (tasks/realism.pose_errors): OKS over all 17 joints as GigaCrowd
scores it, the median joint error, and the share of skeletons that are mostly another person's, by
visibility, by the number of other boxes over the person's, by box height; per joint the error and
the share that land on a neighbour's same joint.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from tasks.models.body import BUILTIN_NEUTRAL, BodyModel
from tasks.poses import load_bank
from schemas.scene import SyntheticConfig
from tasks.synth import synthesize
w, h, people, seed = (int(v) for v in sys.argv[1:5])
out = Path(sys.argv[5])
t0 = time.perf_counter()
body, bank = BodyModel.load(BUILTIN_NEUTRAL), load_bank()
image, truth = synthesize(SyntheticConfig(people=people, width=w, height=h, seed=seed), out, body, bank)
dt = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": dt, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024,
                  "jpeg_mb": image.stat().st_size / 1e6, "truth_mb": truth.stat().st_size / 1e6}))
"""


def render(args: argparse.Namespace) -> dict[str, object]:
    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(dir=args.workdir) as wd:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-c", _CHILD, str(w), str(h), str(args.people), str(args.seed), wd]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(size=args.size, megapixels=w * h / 1e6, people=args.people, seed=args.seed)
    print(
        f"{args.size} ({w * h / 1e9:.2f} GP), {args.people} people: {res['seconds']:.0f} s wall, "
        f"{res['cpu_s']:.0f} s CPU, peak RSS {res['peak_rss_mb']:.0f} MB, JPEG {res['jpeg_mb']:.0f} MB"
    )
    return res


def coco_reference(root: Path) -> dict[str, float]:
    """MoveNet OKS on real annotated people >= 100 px (COCO json + images in `root`), GT boxes."""
    import cv2
    import numpy as np

    from tasks.models.movenet import MoveNet
    from tasks.realism import pose_oks

    pose = MoveNet.load()
    oks = []
    for js in sorted(root.glob("*.json")):
        d = json.loads(js.read_text())
        files = {i["id"]: i["file_name"] for i in d["images"]}
        for an in d["annotations"]:
            x, y, bw, bh = an["bbox"]
            if an.get("iscrowd", 0) or an.get("num_keypoints", 0) < 5 or bh < 100:
                continue
            image = cv2.imread(str(root / files[an["image_id"]]))[..., ::-1].copy()
            kp = np.asarray(an["keypoints"], float).reshape(-1, 3)
            box = np.array([[x, y, x + bw, y + bh]])
            oks.append(pose_oks(image, box, kp[None, :, :2], kp[None, :, 2], pose)[0])
    o = np.array(oks)
    return {"posed": len(o), "oks_mean": float(o.mean()), "oks_median": float(np.median(o)),
            "oks_ge_050": float(np.mean(o >= 0.5))}  # fmt: skip


def realism(args: argparse.Namespace) -> dict[str, object]:
    import cv2

    from schemas.scene import SyntheticConfig
    from schemas.truth import read_truth
    from tasks.models.body import BUILTIN_NEUTRAL, BodyModel
    from tasks.models.movenet import MoveNet
    from tasks.models.yolox_onnx import YoloxOnnx
    from tasks.poses import load_bank
    from tasks.realism import measure
    from tasks.synth import synthesize

    w, h = (int(v) for v in args.size.lower().split("x"))
    body, bank = BodyModel.load(BUILTIN_NEUTRAL), load_bank()
    detector, pose = YoloxOnnx.load(), MoveNet.load()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as wd:
        for preset in args.presets:
            for seed in args.seeds:
                cfg = SyntheticConfig(people=args.people, width=w, height=h, seed=seed, preset=preset)
                image, truth = synthesize(cfg, Path(wd) / f"{preset}-{seed}", body, bank)
                t = time.perf_counter()
                frame = cv2.imread(str(image))[..., ::-1].copy()
                r = measure(frame, read_truth(truth), detector, pose).to_dict()
                r.update(preset=preset, seed=seed, seconds=time.perf_counter() - t)
                rows.append(r)
    print(
        f"{'preset':>16} {'seed':>5} {'people':>6} {'>=100px':>7} {'recall':>7} {'vis>=.5':>7} {'<100px':>7} "
        f"{'dets':>5} {'unmatched':>9} {'posed':>5} {'OKS mean':>8} {'median':>6} {'>=0.5':>6}"
    )
    for r in rows:
        print(
            f"{r['preset']:>16} {r['seed']:>5} {r['people']:>6} {r['tall']:>7} {r['recall_tall']:7.3f} "
            f"{r['recall_tall_visible']:7.3f} {r['recall_small']:7.3f} {r['detections']:>5} "
            f"{r['unmatched']:>9} {r['posed']:>5} {r['oks_mean']:8.3f} {r['oks_median']:6.3f} "
            f"{r['oks_ge_050']:6.3f}"
        )
    result: dict[str, object] = {"size": args.size, "rows": rows}
    if args.real:
        ref = coco_reference(args.real)
        result["real_reference"] = ref
        print(
            f"real photos ({args.real}): {ref['posed']} people, MoveNet OKS mean {ref['oks_mean']:.3f}, "
            f"median {ref['oks_median']:.3f}, >=0.5 {ref['oks_ge_050']:.3f}"
        )
    return result


def pose_errors(args: argparse.Namespace) -> dict[str, object]:
    import cv2

    from schemas.scene import SyntheticConfig
    from schemas.truth import read_truth
    from tasks.models.body import BUILTIN_NEUTRAL, BodyModel
    from tasks.models.movenet import MoveNet
    from tasks.poses import load_bank
    from tasks.realism import pose_errors as measure
    from tasks.synth import synthesize

    sizes = {400: (8192, 4096), 800: (8192, 4096), 2000: (16384, 8192)}
    body, bank, pose = BodyModel.load(BUILTIN_NEUTRAL), load_bank(), MoveNet.load()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as wd:
        for people in args.people:
            w, h = sizes.get(people, (16384, 8192))
            cfg = SyntheticConfig(people=people, width=w, height=h, seed=args.seed, preset=args.preset)
            image, truth = synthesize(cfg, Path(wd) / str(people), body, bank)
            r = measure(cv2.imread(str(image))[..., ::-1].copy(), read_truth(truth), pose, args.mask_others)
            rows.append({"people": people, "size": f"{w}x{h}", "seed": args.seed, "preset": args.preset,
                         "mask_others": args.mask_others, **r})  # fmt: skip
            print(f"{people} people ({w}x{h}): {json.dumps(r['all'])}")
            for key in ("visibility", "overlaps", "height_px"):
                for band, v in r[key].items():  # type: ignore[attr-defined]
                    if v["people"]:
                        print(
                            f"  {key:>10} {band:>9}: {v['people']:>5} people, OKS {v['oks']:.3f}, joint "
                            f"error {v['joint_err']:.3f} box, mostly another's {v['mostly_another']:.3f}"
                        )
            j = r["joints"]  # type: ignore[index]
            print("  per joint, median error (box heights):", " ".join(f"{e:.3f}" for e in j["median_err"]))
            print("  per joint, another's share:           ", " ".join(f"{e:.3f}" for e in j["another"]))
    return {"rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("render")
    r.add_argument("--size", default="31744x15872", help="WxH")
    r.add_argument("--people", type=int, default=1000)
    r.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("realism")
    q.add_argument("--size", default="8192x4096", help="WxH")
    q.add_argument("--people", type=int, default=300)
    q.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    q.add_argument(
        "--presets", nargs="+", default=["plaza"], choices=("plaza", "stadium_entrance", "park"),
        help="the synthetic worlds (input.synthetic.preset)",
    )  # fmt: skip
    q.add_argument("--real", type=Path, default=None, help="COCO-format annotated photos (json + images)")
    e = sub.add_parser("pose-errors")
    e.add_argument("--people", type=int, nargs="+", default=[400, 800, 2000])
    e.add_argument("--seed", type=int, default=31)
    e.add_argument("--preset", default="plaza", choices=("plaza", "stadium_entrance", "park"))
    e.add_argument(
        "--mask-others", action="store_true", dest="mask_others",
        help="paint the other people's boxes out of each crop first (tasks/pose2d.paint_out_others)",
    )  # fmt: skip
    for p in (r, q, e):
        p.add_argument("--workdir", type=Path, default=None, help="where frames are written (default: temp)")
    args = ap.parse_args()
    res = {"render": render, "realism": realism, "pose-errors": pose_errors}[args.what](args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"synth_{args.what.replace('-', '_')}.json"
    res = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(), **res}
    out.write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
