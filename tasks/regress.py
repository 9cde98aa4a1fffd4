"""Single-person SMPL regression over boxes, with CLIFF's conventions (reference/method.md section 3).

Crop: the box made to the crop's 256x192 (rows x cols) aspect and rescaled by 1.1 around its centre;
b = 200 * scale = the crop's height in full-image pixels. Focal f = sqrt(W^2 + H^2) unless given,
principal point at the image centre. bbox info = [(cx - W/2) / f * 2.8, (cy - H/2) / f * 2.8,
(b - 0.24 f) / (0.06 f)]. The crop camera (s, tx, ty) becomes a full-image translation (CrowdRec eq. 1):
tz = 2 f / (b s), tx_full = tx + 2 (cx - W/2) / (b s), ty_full = ty + 2 (cy - H/2) / (b s).
Camera frame: OpenCV (x right, y down, z forward), metres.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import roma
import torch
from torch import nn

from schemas.tables import FrameSmpl, SmplRows
from tasks.models.cliff import CROP_HW, IMAGENET_MEAN, IMAGENET_STD
from tasks.pose2d import crop_affine, crop_from_levels

if TYPE_CHECKING:
    from tasks.camera import FrameCamera
    from tasks.quality import Quality

CROP_SIZE = (CROP_HW[1], CROP_HW[0])  # (width, height) as tasks/pose2d takes it
CROP_RESCALE = 1.1


def default_focal(width: float, height: float) -> float:
    """Focal length (pixels) assumed for an uncalibrated image: its diagonal."""
    return float(np.hypot(width, height))


def crop_params(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """boxes (N, 4) x1, y1, x2, y2 full-image px -> centre (N, 2) px and b (N,) = crop height px."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    w = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    b = CROP_RESCALE * np.maximum(w * CROP_HW[0] / CROP_HW[1], h)
    return centre, b


def bbox_info(centre: torch.Tensor, b: torch.Tensor, focal: torch.Tensor, pp: torch.Tensor) -> torch.Tensor:
    """centre (N, 2) px, b (N,) px, focal (N,) px, pp (N, 2) principal point px (CLIFF: the image
    centre) -> (N, 3) CLIFF bbox info."""
    xy = (centre - pp) / focal[:, None] * 2.8
    size = (b - 0.24 * focal) / (0.06 * focal)
    return torch.cat([xy, size[:, None]], dim=1)


def cam_crop_to_full(
    cam: torch.Tensor, centre: torch.Tensor, b: torch.Tensor, focal: torch.Tensor, pp: torch.Tensor
) -> torch.Tensor:
    """cam (N, 3) crop camera (s, tx, ty); centre (N, 2) px; b (N,) px; focal (N,) px; pp (N, 2)
    principal point px -> (N, 3) translation (m) of the body in the camera frame (CrowdRec eq. 1)."""
    bs = b * cam[:, 0] + 1e-9
    offset = 2 * (centre - pp) / bs[:, None]
    return torch.cat([cam[:, 1:] + offset, (2 * focal / bs)[:, None]], dim=1)


def project(points: torch.Tensor, focal: torch.Tensor, pp: torch.Tensor) -> torch.Tensor:
    """points (N, K, 3) camera frame m -> (N, K, 2) px; focal (N,) px, pp (N, 2) principal point px."""
    z = points[..., 2:].clamp(min=1e-6)
    return focal[:, None, None] * points[..., :2] / z + pp[:, None, :]


def to_crop_units(xy: torch.Tensor, centre: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """xy (N, K, 2) full-image px -> (x - c) / b, the box-normalised units of the keypoint losses."""
    return (xy - centre[:, None, :]) / b[:, None, None]


def normalise_crops(crops: np.ndarray) -> torch.Tensor:
    """crops (N, h, w, 3) uint8 RGB -> (N, 3, h, w) float32, ImageNet mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class Regressor(Protocol):
    """A regressor network as the regress stage drives it (CLIFF, the embedded regressor)."""

    uses_image: bool  # False: crops are not read at all (keypoints + bbox info only)
    name: str
    sha256: str

    def predict(
        self, crops: torch.Tensor | None, keypoints: torch.Tensor, info: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """crops (N, 3, 256, 192) normalised or None; keypoints (N, 17, 3) in crop units (x - c) / b
        with confidence; info (N, 3) bbox info; b (N,) crop heights in full-image px -> rotmat
        (N, 24, 3, 3), betas (N, 10), crop cam (N, 3)."""
        ...

    def finetunable(
        self, crops: torch.Tensor | None, x: BoxInputs
    ) -> tuple[tuple[torch.Tensor, ...], nn.Module]:
        """What the crowd step finetunes (tasks/crowd): the differentiable network, called as
        net(*inputs[idx]) -> rotmat, betas, crop cam, and its inputs for a frame's people, row i =
        person i. crops (N, 256, 192, 3) uint8 (None when uses_image is False); x the people's
        box inputs."""
        ...


@dataclass(frozen=True)
class Regression:
    """Per person: pose (N, 72) axis-angle rad (global orient in the camera frame), betas (N, 10),
    cam (N, 3) crop camera, transl (N, 3) m in the full-image camera frame, centre (N, 2) and b (N,)
    crop px, focal (N,) px; pp (2,) the principal point px; the regressor that made it (backend:name)
    and its weights' sha256, so that whoever writes the rows need not load it again."""

    pose: np.ndarray
    betas: np.ndarray
    cam: np.ndarray
    transl: np.ndarray
    centre: np.ndarray
    b: np.ndarray
    focal: np.ndarray
    pp: np.ndarray
    regressor: str = ""
    regressor_sha256: str = ""

    @classmethod
    def concat(cls, parts: list[Regression]) -> Regression:
        """One frame's batches, in order, as one (principal point and regressor: the first's)."""
        arrays = {
            f: np.concatenate([getattr(p, f) for p in parts])
            for f in ("pose", "betas", "cam", "transl", "centre", "b", "focal")
        }
        first = parts[0]
        return cls(**arrays, pp=first.pp, regressor=first.regressor, regressor_sha256=first.regressor_sha256)


@dataclass(frozen=True)
class BoxInputs:
    """Per person, float32 tensors: centre (N, 2) and b (N,) crop px; focal (N,) px; pp (N, 2)
    principal point px; info (N, 3) bbox info; keypoints (N, 17, 3) in box units (x - c) / b with
    confidence; kp_px (N, 17, 3) the same in full-resolution pixels."""

    centre: torch.Tensor
    b: torch.Tensor
    focal: torch.Tensor
    pp: torch.Tensor
    info: torch.Tensor
    keypoints: torch.Tensor
    kp_px: torch.Tensor


def box_inputs(
    boxes: np.ndarray, keypoints: np.ndarray, focal: float | np.ndarray, pp: tuple[float, float] | np.ndarray
) -> BoxInputs:
    """What a regressor is fed for boxes (N, 4) px with keypoints (N, 17, 3) px + confidence; focal px,
    one for all or (N,); pp principal point px, (2,) for all or (N, 2)."""
    n = len(boxes)
    centre, b = crop_params(boxes)
    c_t, b_t = torch.from_numpy(centre).float(), torch.from_numpy(b).float()
    f_t = torch.as_tensor(np.broadcast_to(np.asarray(focal, np.float32), (n,)).copy())
    pp_t = torch.as_tensor(np.broadcast_to(np.asarray(pp, np.float32), (n, 2)).copy())
    kp_px = torch.tensor(np.asarray(keypoints, np.float32)).reshape(n, 17, 3)
    kp = kp_px.clone()
    kp[..., :2] = to_crop_units(kp[..., :2], c_t, b_t)
    return BoxInputs(c_t, b_t, f_t, pp_t, bbox_info(c_t, b_t, f_t, pp_t), kp, kp_px)


def cut_crops(levels: list[Any], boxes: np.ndarray) -> np.ndarray:
    """(N, 256, 192, 3) uint8: each box's (N, 4) px CLIFF crop, read from the pyramid `levels` at the
    coarsest level that keeps the crop's resolution (tasks/pose2d.crop_from_levels)."""
    crops = np.zeros((len(boxes), CROP_SIZE[1], CROP_SIZE[0], 3), np.uint8)
    for i, box in enumerate(boxes):
        crops[i] = crop_from_levels(levels, box, CROP_SIZE, CROP_RESCALE)[0]
    return crops


def _crops(
    levels: list[Any], boxes: np.ndarray, order: np.ndarray, batch: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        yield idx, cut_crops(levels, boxes[idx])


@torch.inference_mode()
def regress(
    levels: list[Any] | None,
    boxes: np.ndarray,
    keypoints: np.ndarray,
    model: Regressor,
    image_wh: tuple[int, int],
    focal: float | None = None,
    pp: tuple[float, float] | None = None,
    batch: int = 32,
) -> Regression:
    """SMPL for every box of one frame. levels: the frame's pyramid (level k downsampled 2^k; only read
    when the model uses the image); boxes (N, 4) px; keypoints (N, 17, 3) x, y px, confidence;
    image_wh full-resolution size; focal px (default: the diagonal); pp principal point px (default:
    the image centre).

    Crops (uint8) are cut by a second thread while this one runs the network, row by row through the
    frame so neighbours share chunks of a chunk-cached pyramid.
    """
    n = len(boxes)
    f = default_focal(*image_wh) if focal is None else float(focal)
    x = box_inputs(boxes, keypoints, f, (image_wh[0] / 2, image_wh[1] / 2) if pp is None else pp)
    centre, b = crop_params(boxes)
    kp, info = x.keypoints, x.info
    rotmat = torch.zeros(n, 24, 3, 3)
    betas, cam = torch.zeros(n, 10), torch.zeros(n, 3)
    order = np.lexsort((centre[:, 0], centre[:, 1] // 2048))

    def run(idx: np.ndarray, crops: np.ndarray | None) -> None:
        t = torch.from_numpy(idx)
        images = None if crops is None else normalise_crops(crops)
        rotmat[t], betas[t], cam[t] = model.predict(images, kp[t], info[t], x.b[t])

    if not model.uses_image or levels is None:
        for i in range(0, n, batch):
            run(order[i : i + batch], None)
    else:
        with ThreadPoolExecutor(max_workers=1) as pool:
            source = _crops(levels, boxes, order, batch)
            pending = pool.submit(next, source, None)
            while (item := pending.result()) is not None:
                pending = pool.submit(next, source, None)
                run(*item)
    bad = ~(
        torch.isfinite(rotmat).flatten(1).all(1) & torch.isfinite(betas).all(1) & torch.isfinite(cam).all(1)
    )
    if bad.any():  # a broken checkpoint or a network fed garbage: nothing non-finite reaches a table
        name = getattr(model, "name", "")
        raise ValueError(f"the regressor {name} gave non-finite values for {int(bad.sum())} of {n} people")
    transl = cam_crop_to_full(cam, x.centre, x.b, x.focal, x.pp)
    pose = roma.rotmat_to_rotvec(rotmat).reshape(n, 72)
    return Regression(
        pose=pose.numpy().astype(np.float32),
        betas=betas.numpy(),
        cam=cam.numpy(),
        transl=transl.numpy().astype(np.float64),
        centre=centre,
        b=b,
        focal=x.focal.numpy().astype(np.float64),
        pp=x.pp[0].numpy().astype(np.float64) if n else np.zeros(2),
    )


def cliff_affine(box: np.ndarray) -> np.ndarray:
    """(2, 3) full-image -> 192x256 crop affine of CLIFF's crop rule for one box (4,) px."""
    return crop_affine(np.asarray(box, np.float64), CROP_SIZE, CROP_RESCALE)


def smpl_rows(
    det_id: np.ndarray, pose: np.ndarray, betas: np.ndarray, transl: np.ndarray, scale: np.ndarray,
    cam: np.ndarray, joints: np.ndarray, focal: np.ndarray, pp: np.ndarray, centre: np.ndarray,
    b: np.ndarray, finetuned: bool, q: Quality, stature: np.ndarray, support: np.ndarray | None = None,
) -> SmplRows:  # fmt: skip
    """A frame's people as smpl-contract rows. det_id (N,); pose (N, 72) axis-angle rad; betas (N, 10);
    transl (N, 3) m; scale (N,); cam (N, 3) crop camera; joints (N, 24, 3) m, camera frame (scale and
    transl included); focal (N,) px; pp (2,) principal point px; centre (N, 2) and b (N,) crop px;
    finetuned: made by the crowd step; q: how each fits its keypoints and the ground; stature (N,) m
    rest-pose height x scale; support (N,) labels of tasks/support.py (None: not judged)."""
    from tasks.support import NOT_JUDGED

    n = len(det_id)
    return SmplRows(
        det_id=np.asarray(det_id), global_orient=pose[:, :3], body_pose=pose[:, 3:], betas=betas,
        transl=transl, scale=scale, cam_crop=cam, joints3d=joints, focal=focal, cx=np.full(n, pp[0]),
        cy=np.full(n, pp[1]), crop_size=b, crop_x=centre[:, 0], crop_y=centre[:, 1],
        finetuned=np.full(n, finetuned), keypoint_error=q.keypoint_error, ground_distance=q.ground_distance,
        stature=stature, support=np.full(n, NOT_JUDGED, object) if support is None else support,
    )  # fmt: skip


def frame_smpl(
    parts: list[Regression], det_id: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray, body_spec: str,
    camera: FrameCamera,
) -> FrameSmpl:  # fmt: skip
    """A frame's smpl table from its regression batches (in det_id order): the people posed by the body
    model `body_spec`, with how each fits its keypoints and the crowd's ground; boxes (N, 4) px,
    keypoints (N, 17, 3) px + confidence; the frame's camera goes into the metadata."""
    import json

    from tasks.models.body import BodyModel
    from tasks.quality import quality

    r = Regression.concat(parts)
    body = BodyModel.load(body_spec)
    _, joints, coco = body.numpy_forward(r.pose, r.betas, r.transl)
    pp = (float(r.pp[0]), float(r.pp[1]))
    x = box_inputs(boxes, keypoints, float(r.focal[0]), pp)
    q = quality(joints, coco, x.kp_px, x.centre, x.b, x.focal, x.pp)
    n = len(det_id)
    rows = smpl_rows(
        det_id,
        r.pose,
        r.betas,
        r.transl,
        np.ones(n),
        r.cam,
        joints,
        r.focal,
        r.pp,
        r.centre,
        r.b,
        False,
        q,
        body.statures(r.betas),
    )
    meta = {
        "regressor": r.regressor, "regressor_sha256": r.regressor_sha256, "body_model": body.name,
        "body_model_sha256": body.sha256, "ground_plane": json.dumps(q.plane.tolist()),
        "camera": json.dumps(camera.as_dict()),
    }  # fmt: skip
    return FrameSmpl(rows, meta)
