"""Plausibility of the 3D people without 3D truth, on real photographs: what the crowd step does to them.

    python benchmarks/plausibility.py ../shared/data/real            # every photo under it, default settings
    python benchmarks/plausibility.py ../shared/data/real --run DIR  # measure a finished run instead
    python benchmarks/plausibility.py ../shared/data/real --out DIR  # and keep the run in DIR

The pipeline runs (2 workers, default settings) on every JPEG/PNG under the folder (its subfolders are
the table's groups: publicdomain, varied, coco_keypoints, ...), then per group and over all:
- statures (the rest-pose mesh's height x scale, m) after the crowd step and before it (the regress
  stage's, scale 1): median, share within 1.35-2.05 m, how many below and above;
- support as the crowd step judged it (floor, further levels, not_standing, off_floor);
- of the people on a level, the share whose feet are within 10 cm of it and their median lean (deg,
  feet-to-head line from the level's up); the median displacement of the pelvis by the crowd step;
- on the annotated COCO-17 fixtures (ROOT/coco_keypoints/coco, ochuman), the reprojected OKS of the
  people before and after the crowd step (detected boxes; an annotated person no box matches: 0).
Targets (issue #23): >= 90% within 1.35-2.05 m, median 1.55-1.85 m; the crowd step never lowers the
share against the same people before it; >= 80% of the people on a level within 10 cm of it; on
publicdomain (nearly everyone stands or walks) >= 80% of the people on a level.
Results: benchmarks/results/plausibility.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
IMAGES = (".jpg", ".jpeg", ".png")


def run(photos: list[Path], out: Path, mask_others: bool = True) -> Path:
    """The pipeline with default settings (or pose2d.mask_others false) over `photos`; the scene's
    output directory."""
    import yaml

    from pipeline.config import load_scene, resolve
    from pipeline.run import run_scene

    doc = {
        "name": "real", "output": str(out), "input": {"frames": [str(p) for p in photos]},
        "cluster": {"n_workers": 2}, "pose2d": {"overlay": False, "mask_others": mask_others},
        "regress": {"meshes": False},
    }  # fmt: skip
    scene = out / "real.yaml"
    scene.write_text(yaml.safe_dump(doc))
    summary = run_scene(resolve(load_scene(scene), scene))
    if summary.failed:
        print(f"frames that failed (no people found, ...): {summary.failed}", file=sys.stderr)
    return out / "real"


def frame_measures(frame_dir: Path) -> dict[str, np.ndarray] | None:
    """tasks/support.person_measures of one frame of a run (None: no crowd table)."""
    from schemas.layout import CROWD_FILE, CROWD_REPORT, SMPL_FILE
    from schemas.tables import read_smpl
    from tasks.support import FLOOR, Levels, person_measures

    if not (frame_dir / CROWD_FILE).is_file():
        return None
    after, before = read_smpl(frame_dir / CROWD_FILE).rows, read_smpl(frame_dir / SMPL_FILE).rows
    report = json.loads((frame_dir / CROWD_REPORT).read_text())
    levels = None
    if report.get("levels"):
        planes = np.array([lv["plane"] for lv in report["levels"]])
        index = {FLOOR: 0} | {f"level_{k + 1}": k for k in range(1, len(planes))}
        level = np.array([index.get(str(s), -1) for s in after.support])
        levels = Levels(planes[0, :3], planes[:, 3], level)
    return person_measures(
        after.joints3d, after.stature, after.support, levels, before.joints3d, before.stature
    )


def table(run_dir: Path, root: Path | None) -> dict[str, dict[str, object]]:
    """plausibility per group of frames (the photo's subfolder under `root`, from the scene's frame
    list) and over all."""
    import yaml

    from tasks.support import plausibility

    frames = yaml.safe_load((run_dir.parent / "real.yaml").read_text())["input"]["frames"] if root else []
    group = {Path(f).stem: Path(f).relative_to(root).parts[0] for f in frames} if root else {}
    parts: dict[str, list[dict[str, np.ndarray]]] = {}
    for fdir in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        m = frame_measures(fdir)
        if m is not None:
            parts.setdefault(group.get(fdir.name, "frames"), []).append(m)
            parts.setdefault("all", []).append(m)
    out = {}
    for name, ms in parts.items():
        joined = {k: np.concatenate([m[k] for m in ms]) for k in ms[0]}
        out[name] = {"photos": len(ms), **plausibility(joined)}
    return out


def fixture_oks(run_dir: Path, root: Path) -> dict[str, dict[str, float | int]]:
    """Per COCO-17 set under root/coco_keypoints (coco, ochuman): the mean OKS of the run's people
    against the annotated people (>= 5 joints; box area), each matched to a detected box by IoU >= 0.5
    (unmatched: 0), the body model's COCO-17 projected with the frame's camera; before the crowd step
    (smpl.parquet) and after it (crowd.parquet)."""
    import pyarrow.parquet as pq

    from schemas.layout import CROWD_FILE, DETECTIONS_FILE, SMPL_FILE
    from schemas.tables import read_smpl
    from tasks.boxes import area, greedy_recall_match
    from tasks.evaluate import oks_matrix, project
    from tasks.imports import read_boxes
    from tasks.models.body import BUILTIN_NEUTRAL, BodyModel

    body, out = BodyModel.load(BUILTIN_NEUTRAL), {}
    for name in ("coco", "ochuman"):
        js = next((root / "coco_keypoints" / name).glob("*.json"), None)
        if js is None:
            continue
        oks: dict[str, list[float]] = {"before": [], "after": []}
        for frame, people in read_boxes(js, "coco-results").items():
            fdir = run_dir / frame
            assert people.keypoints is not None
            posed = (people.keypoints[..., 2] > 0).sum(1) >= 5
            if not posed.any() or not (fdir / CROWD_FILE).is_file():
                continue
            gt, kp = people.boxes[posed, :4], people.keypoints[posed]
            target = np.where(kp[..., 2:] > 0, kp[..., :2], np.nan)
            det = pq.read_table(fdir / DETECTIONS_FILE).to_pandas().set_index("det_id")
            for key, file in (("before", SMPL_FILE), ("after", CROWD_FILE)):
                r = read_smpl(fdir / file).rows
                boxes = det.loc[r.det_id, ["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
                _, _, coco = body.numpy_forward(
                    np.concatenate([r.global_orient, r.body_pose], axis=1), r.betas, r.transl, scale=r.scale
                )
                K = np.array([[r.focal[0], 0, r.cx[0]], [0, r.focal[0], r.cy[0]], [0, 0, 1.0]])
                proj = project(coco, K)
                for g, j in enumerate(greedy_recall_match(boxes, gt)):
                    hit = j >= 0
                    oks[key].append(
                        float(oks_matrix(proj[j : j + 1], target[g : g + 1], area(gt[g : g + 1]))[0, 0])
                        if hit
                        else 0.0
                    )
        out[name] = {"people": len(oks["after"])} | {
            k: round(float(np.mean(v)), 3) for k, v in oks.items() if v
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, help="a folder of photographs (searched recursively)")
    ap.add_argument("--run", type=Path, help="a finished run's scene directory (OUTPUT/real) to measure")
    ap.add_argument("--out", type=Path, help="run into this directory and keep it (default: a temporary one)")
    ap.add_argument(
        "--no-mask-others", action="store_false", dest="mask_others", help="pose2d.mask_others: false"
    )
    args = ap.parse_args()
    photos = sorted(p.resolve() for p in args.root.rglob("*") if p.suffix.lower() in IMAGES)
    with tempfile.TemporaryDirectory() as tmp:
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
        run_dir = args.run or run(photos, (args.out or Path(tmp)).resolve(), args.mask_others)
        res = table(run_dir, args.root.resolve())
        fixtures = fixture_oks(run_dir, args.root.resolve())
    head = ("group", "photos", "people", "stature_m", "within", "before", "below", "above", "on_level",
            "within_10cm", "lean_deg", "not_standing", "off_floor", "moved_m")  # fmt: skip
    print(" ".join(f"{h:>12}" for h in head))
    for name, r in res.items():
        st, sup = r["stature"], r["support"]
        cells = (
            name, r["photos"], r["people"], st["median_m"], st["within"],
            r.get("stature_before", {}).get("within"), st["below"], st["above"], r["on_a_level"],
            r.get("on_level_within_m", {}).get("0.1"), r.get("lean_median_deg"),
            sup.get("not_standing", 0), sup.get("off_floor", 0), r.get("moved_median_m"),
        )  # fmt: skip
        print(" ".join(f"{c!s:>12}" for c in cells))
    for name, r in fixtures.items():
        print(f"{name} fixtures, reprojected OKS of {r['people']} annotated people: before the crowd step "
              f"{r.get('before')}, after {r.get('after')}")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "plausibility.json").write_text(json.dumps(res | {"fixture_oks": fixtures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
