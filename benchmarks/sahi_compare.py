"""Our detect stage against SAHI's sliced prediction, same ONNX model, same 0.5-gigapixel frame.

    python -m venv /tmp/sahi-venv && /tmp/sahi-venv/bin/pip install sahi==0.12.8 onnxruntime
    python benchmarks/sahi_compare.py --sahi-python /tmp/sahi-venv/bin/python

SAHI 0.12.8 needs `opencv-python` (it would replace this environment's headless OpenCV 4), so it runs
in its own venv, importing our YOLOX-Nano pre/post-processing (tasks/models/yolox_onnx.py) through a
small SAHI DetectionModel, so both sides run the identical network and decoding. The frame is a
synthetic 31744x15872 crowd of 1000 people (its truth gives recall), rendered once and cached.
Ours: `pipeline run` (ingest + detect, pose2d off) on a local cluster of 2 single-threaded workers;
SAHI: `get_sliced_prediction` with 416x416 slices, 0.2 overlap, its defaults otherwise (standard
full-frame pass, GREEDYNMM on IOS 0.5), score threshold 0.23. Wall time; peak memory of the whole
process tree (sampled RSS, summed over processes); recall (IoU >= 0.5) by person height.
Target (issue #4): ours >= 2x faster with lower peak memory at equal or better recall.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from schemas.layout import DETECTIONS_FILE, MANIFEST

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BANDS = [(0, 100), (100, 200), (200, 400), (400, float("inf"))]

_SAHI = r"""
import json, sys, time
import numpy as np
from sahi.models.base import DetectionModel
from sahi.prediction import ObjectPrediction
from sahi.predict import get_sliced_prediction
from tasks.models.yolox_onnx import YoloxOnnx

class Yolox(DetectionModel):
    def load_model(self):
        self.set_model(YoloxOnnx.load())

    def set_model(self, model, **kwargs):
        self.model = model
        self.category_mapping = {"0": "person"}

    def perform_inference(self, image):
        found = self.model([np.ascontiguousarray(image)], score_thr=self.confidence_threshold)
        self._original_predictions = found

    def _create_object_prediction_list_from_original_predictions(self, shift_amount_list=None,
                                                                 full_shape_list=None):
        if shift_amount_list is not None and isinstance(shift_amount_list[0], int):
            shift_amount_list = [shift_amount_list]  # SAHI passes one image's values unwrapped
        if full_shape_list is not None and isinstance(full_shape_list[0], int):
            full_shape_list = [full_shape_list]
        shift = shift_amount_list[0] if shift_amount_list else [0, 0]
        full = None if full_shape_list is None else full_shape_list[0]
        preds = [ObjectPrediction(bbox=[float(v) for v in b[:4]], category_id=0, category_name="person",
                                  score=float(b[4]), shift_amount=shift, full_shape=full)
                 for b in self._original_predictions[0]]
        self._object_prediction_list_per_image = [preds]

t0 = time.perf_counter()
model = Yolox(confidence_threshold=0.23, load_at_init=True)
res = get_sliced_prediction(sys.argv[1], model, slice_height=416, slice_width=416, overlap_height_ratio=0.2,
                            overlap_width_ratio=0.2, verbose=0)
boxes = [[*p.bbox.to_xyxy(), p.score.value] for p in res.object_prediction_list]
print(json.dumps({"seconds": time.perf_counter() - t0, "boxes": boxes}))
"""


def _tree_peak(proc: subprocess.Popen[bytes], peak: list[float]) -> None:
    import psutil

    try:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            total = 0
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += p.memory_info().rss
            peak[0] = max(peak[0], total / 2**20)
            time.sleep(0.05)
    except psutil.NoSuchProcess:
        pass


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak tree RSS MB, stdout) of a command."""
    peak = [0.0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    watcher = threading.Thread(target=_tree_peak, args=(proc, peak), daemon=True)
    watcher.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {err.decode()[-2000:]}")
    return wall, peak[0], out.decode()


def recall_by_band(pred: np.ndarray, gt: np.ndarray) -> dict[str, object]:
    from tasks.boxes import greedy_recall_match
    from tasks.realism import recall_by_height

    m = greedy_recall_match(pred[:, :4], gt)
    bands = {k: r for k, (_, r) in recall_by_height(pred, gt, BANDS).items()}
    return {"recall": float(np.mean(m >= 0)), "precision": float((m >= 0).sum() / max(len(pred), 1)),
            "detections": len(pred), "bands": bands}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sahi-python", required=True, help="python of a venv with sahi and onnxruntime")
    ap.add_argument("--size", default="31744x15872")
    ap.add_argument("--people", type=int, default=1000)
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("GIGACROWD_BENCH_CACHE", Path.home() / ".cache" / "gigacrowd-bench")),
    )
    ap.add_argument(
        "--prune", nargs="+", choices=["ground", "off"], default=["ground"],
        help="detect.prune settings to run ours with (each a run of its own)",
    )  # fmt: skip
    args = ap.parse_args()
    from schemas.tables import DETECTIONS, detections_array, read_table
    from schemas.truth import read_truth

    w, h = (int(v) for v in args.size.split("x"))
    from common import cached_frame

    image, truth = cached_frame(args.cache / f"synth_{args.size}_{args.people}", args.people, w, h, seed=0)
    gt = read_truth(truth).arrays().bbox
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res: dict[str, object] = {"size": args.size, "people": args.people}
    for prune in args.prune:
        with tempfile.TemporaryDirectory() as wd:
            scene = Path(wd) / "bench.yaml"
            scene.write_text(
                f"name: bench\ninput: {{frames: {image}}}\noutput: {wd}/out\ncluster: {{n_workers: 2}}\n"
                f"detect: {{prune: {prune}}}\npose2d: {{enabled: false}}\n"
            )
            ours_s, ours_mb, _ = run_measured([sys.executable, "-m", "pipeline", "run", str(scene)], env)
            frame = Path(wd) / "out" / "bench" / image.stem
            ours = detections_array(read_table(frame / DETECTIONS_FILE, DETECTIONS))
            units = json.loads((frame / MANIFEST).read_text())["units"]
        det = units["detect/frame"]["info"]
        res[f"ours, prune {prune}"] = {
            "seconds": ours_s, "peak_mb": ours_mb, **recall_by_band(ours, gt),
            "ingest_s": units["ingest/frame"]["seconds"], "tiles": det["tiles"],
            "planned_tiles": det["planned_tiles"],
        }  # fmt: skip
    sahi_s, sahi_mb, out = run_measured([args.sahi_python, "-c", _SAHI, str(image)], env)
    sahi = np.array(json.loads(out.strip().splitlines()[-1])["boxes"]).reshape(-1, 5)
    res["sahi"] = {"seconds": sahi_s, "peak_mb": sahi_mb, **recall_by_band(sahi, gt)}
    for k, r in res.items():
        if not isinstance(r, dict):
            continue
        tiles = ""
        if "tiles" in r:
            tiles = f", {r['tiles']} of {r['planned_tiles']} tiles, ingest {r['ingest_s']:.0f} s"
        print(f"{k}: {r['seconds']:.0f} s{tiles}, peak {r['peak_mb']:.0f} MB, recall {r['recall']:.3f}, "
              f"precision {r['precision']:.3f}, by height {r['bands']}")  # fmt: skip
        if k != "sahi":
            speed, memory = sahi_s / r["seconds"], r["peak_mb"] / sahi_mb
            print(f"  speed-up {speed:.2f}x (target 2), memory {memory:.2f}x of SAHI's")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sahi_compare.json").write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
