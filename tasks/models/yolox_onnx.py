"""YOLOX through onnxruntime: the shipped YOLOX-Nano (COCO-80) or a user's YOLOX ONNX export.

Pre- and post-processing as YOLOX does it (reference/method.md section 1): letterbox resize keeping the
aspect ratio into the top-left corner, pad value 114, BGR, 0-255 floats with no mean/std; raw outputs per
anchor-free grid cell at strides 8, 16, 32 decoded as centre (xy + grid) * stride and size
exp(wh) * stride; score = objectness * class probability. The shipped file is
`weights/yolox_nano_416x416.onnx` (Megvii YOLOX-Nano, Apache-2.0; see weights/NOTICE.md).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from tasks import InputError
from tasks.boxes import nms
from tasks.files import model_file

BUILTIN_NANO = "builtin:yolox-nano"
NANO_PATH = Path(__file__).parent / "weights" / "yolox_nano_416x416.onnx"
NANO_SHA256 = "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
# The same weights with a free input size (python -m tasks.models.build_yolox_dynamic)
BUILTIN_NANO_DYNAMIC = "builtin:yolox-nano-dynamic"
NANO_DYNAMIC_PATH = Path(__file__).parent / "weights" / "yolox_nano_dynamic.onnx"
NANO_DYNAMIC_SHA256 = "d5d871b6f17320f2d029e0cb99c4400a3cd556210de3b366d017cbc05f7cccd7"
BUILTINS = {
    BUILTIN_NANO: (NANO_PATH, NANO_SHA256),
    BUILTIN_NANO_DYNAMIC: (NANO_DYNAMIC_PATH, NANO_DYNAMIC_SHA256),
}
STRIDES = (8, 16, 32)
PAD_VALUE = 114
PERSON = 0  # COCO class 0; single-class crowd models (ByteTrack) have only this one


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """image (H, W, 3) uint8 RGB -> ((3, h, w) float32 BGR 0-255, ratio) for a (h, w) network input.

    The image is scaled by `ratio` = min(h / H, w / W) into the top-left corner; the rest is 114.
    Boxes found in the input map back to the image by dividing by `ratio`.
    """
    import cv2

    h, w = size
    ratio = min(h / image.shape[0], w / image.shape[1])
    nh, nw = round(image.shape[0] * ratio), round(image.shape[1] * ratio)
    out = np.full((h, w, 3), PAD_VALUE, dtype=np.uint8)
    if (nh, nw) == image.shape[:2]:
        out[:nh, :nw] = image
    else:
        out[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    # RGB -> BGR, HWC -> CHW and uint8 -> float32 in one C++ pass.
    return cv2.dnn.blobFromImage(out, swapRB=True)[0], ratio


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, 2) cell x, y and (A, 1) stride of every anchor of a (h, w) input, in YOLOX's order."""
    grids, strides = [], []
    for s in STRIDES:
        gy, gx = np.mgrid[0 : h // s, 0 : w // s]
        grids.append(np.stack([gx.ravel(), gy.ravel()], 1))
        strides.append(np.full((gx.size, 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)


def grid_decode(raw: np.ndarray, size: tuple[int, int], rows: np.ndarray | None = None) -> np.ndarray:
    """raw (A, 5 + C) network output for a (h, w) input -> (A, 5 + C) with cx, cy, w, h in input pixels
    (only the anchors `rows`, an index or mask, when given).

    Anchors are ordered stride by stride (8, 16, 32), each grid row-major, as YOLOX's head emits them.
    """
    h, w = size
    grid, stride = _grid(h, w)
    if len(grid) != len(raw):
        raise InputError(
            f"YOLOX output has {len(raw)} anchors; a {w}x{h} input at strides 8/16/32 gives {len(grid)}"
        )
    if rows is not None:
        raw, grid, stride = raw[rows], grid[rows], stride[rows]
    out = raw.astype(np.float32, copy=True)
    out[:, :2] = (out[:, :2] + grid) * stride
    out[:, 2:4] = np.exp(np.minimum(out[:, 2:4], 20.0)) * stride  # clamp: exp overflow on garbage output
    return out


def person_boxes(
    raw: np.ndarray, size: tuple[int, int], ratio: float, score_thr: float, nms_iou: float
) -> np.ndarray:
    """raw (A, 5 + C) output for a (h, w) input -> (K, 5) person boxes x1, y1, x2, y2 (image pixels),
    score; after NMS. Only anchors whose score passes are decoded."""
    score = raw[:, 4] * raw[:, 5 + PERSON]
    sel = np.flatnonzero(score >= score_thr)
    if len(sel) == 0:
        return np.zeros((0, 5), np.float32)
    d, score = grid_decode(raw, size, sel), score[sel]
    half = d[:, 2:4] / 2
    boxes = np.concatenate([d[:, :2] - half, d[:, :2] + half], 1) / ratio
    keep = nms(boxes, score, nms_iou)
    return np.concatenate([boxes[keep], score[keep, None]], 1).astype(np.float32)


class YoloxDetector:
    """YOLOX's pre- and post-processing around a network's `raw` call, for every YOLOX backend."""

    size: tuple[int, int]  # network input (h, w)
    batched: bool = False  # one network call for a list of images (GPU), or one call each (CPU)

    def raw(self, batch: np.ndarray) -> np.ndarray:
        """batch (B, 3, h, w) float32 letterboxed -> (B, A, 5 + C) raw (undecoded) network output."""
        raise NotImplementedError

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """image (H, W, 3) uint8 RGB -> the network's (3, h, w) float32 input and its letterbox ratio.
        Separate from `detect` so that a reader thread can prepare the next images while the network
        runs on these."""
        return letterbox(image, self.size)

    def detect(
        self, prepared: list[tuple[np.ndarray, float]], score_thr: float = 0.23, nms_iou: float = 0.65
    ) -> list[np.ndarray]:
        """`prepare`d images -> per image (K, 5) float32 x1, y1, x2, y2, score in its pixels, persons
        only, score >= score_thr, NMS at nms_iou within the image."""
        if not prepared:
            return []
        if self.batched:
            raw = list(self.raw(np.stack([p[0] for p in prepared])))
        else:  # one at a time, without a stacked copy of the inputs
            raw = [self.raw(x[None])[0] for x, _ in prepared]
        return [
            person_boxes(r, self.size, ratio, score_thr, nms_iou)
            for r, (_, ratio) in zip(raw, prepared, strict=True)
        ]

    def __call__(
        self, images: list[np.ndarray], score_thr: float = 0.23, nms_iou: float = 0.65
    ) -> list[np.ndarray]:
        """images: list of (H, W, 3) uint8 RGB -> per image (K, 5) float32 x1, y1, x2, y2, score in its
        pixels, persons only, score >= score_thr, NMS at nms_iou within the image."""
        return self.detect([self.prepare(im) for im in images], score_thr, nms_iou)


class YoloxOnnx(YoloxDetector):
    """One YOLOX ONNX model in an onnxruntime session. Call with RGB uint8 images, get person boxes."""

    def __init__(self, path: Path, name: str, sha256: str, input_size: int = 416, threads: int = 1) -> None:
        """input_size: the square input for models whose graph leaves the size free (else the graph's)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # One thread per model: Dask runs one task per core, so intra-op threads would oversubscribe.
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own untyped errors for corrupt or non-ONNX files
            raise InputError(f"cannot load YOLOX ONNX model {path}: {str(e).splitlines()[0]}") from e
        inp = self.session.get_inputs()[0]
        out = self.session.get_outputs()[0]
        if len(inp.shape) != 4 or len(out.shape) != 3:
            raise InputError(f"{path} is not a YOLOX export: input {inp.shape}, output {out.shape}")
        self.input_name = inp.name
        fixed = all(isinstance(d, int) for d in inp.shape[2:])
        if not fixed and input_size % 32:
            raise InputError(f"YOLOX input size must be a multiple of 32, got {input_size}")
        self.size: tuple[int, int] = (
            (int(inp.shape[2]), int(inp.shape[3])) if fixed else (input_size, input_size)
        )
        self.name, self.sha256 = name, sha256

    @staticmethod
    def load(spec: str = BUILTIN_NANO, input_size: int = 416) -> YoloxOnnx:
        """The model for `spec` (a builtin: name or a path to a .onnx file), once per process;
        input_size applies to graphs with a free input size only."""
        return _load_cached(spec, input_size)

    def raw(self, batch: np.ndarray) -> np.ndarray:
        """batch (B, 3, h, w) float32 letterboxed -> (B, A, 5 + C) raw (undecoded) network output."""
        # One image per run even where the graph takes batches: batches were slower per image on the
        # CPU (benchmarks/history.md).
        return np.concatenate([self.session.run(None, {self.input_name: b[None]})[0] for b in batch])


@lru_cache(maxsize=4)
def _load_cached(spec: str, input_size: int) -> YoloxOnnx:
    return YoloxOnnx(*model_file(spec, BUILTINS, "detector"), input_size=input_size)
