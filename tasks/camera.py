"""The camera of a crowd photograph from its people: focal length, pitch and roll (single-view metrology
with people as the calibration objects; Criminisi et al. 2000, Lv et al. 2006).

People standing on one ground plane are vertical segments of about the same height. In the image their
head-to-ankle lines meet at the vertical vanishing point, at f cot(pitch) from the principal point, and
their heights shrink to zero at the horizon, at f tan(pitch) on the other side; together they fix f.

Model (OpenCV camera frame: x right, y down, z forward; principal point given): the world's up
direction u = Rz(roll) (0, -cos(pitch), -sin(pitch)); the plane of the ankles u . X + rho = 0, rho the
camera's height above it in units of the head-to-ankle height of a person. Each person's ankle pixel
is cast onto that plane, raised by one unit along u and projected: the head pixel it should have.
Unknowns (log f, pitch, roll, log rho) minimise the robust (Cauchy) distance between predicted and
observed heads, in units of each person's image height, so that far and near people count alike.

The estimate is refused (None) when fewer than `min_people` people show a head and an ankle, or when
its own uncertainty says the people do not determine f: a level camera (pitch near 0) puts the
vanishing point at infinity and the horizon through the centre, whatever f is. With the focal held
(given), only pitch, roll and height are estimated: the ground of a camera whose focal is chosen.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from schemas.scene import CameraConfig

HEAD = (0, 1, 2, 3, 4)  # COCO nose, eyes, ears
ANKLES = (15, 16)


@dataclass(frozen=True)
class CameraEstimate:
    """focal px; pitch_deg (> 0: looking down), roll_deg; height: the camera above the ankles' plane in
    person heights (head to ankle); focal_rel_std: the estimate's relative standard deviation; people
    used; plane (4,) the ankles' plane n . X + d = 0 with n the unit up and d in person heights."""

    focal: float
    pitch_deg: float
    roll_deg: float
    height: float
    focal_rel_std: float
    people: int
    plane: tuple[float, float, float, float]


def head_and_feet(keypoints: np.ndarray, min_conf: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """keypoints (N, 17, 3) px + confidence -> head (N, 2) px (mean of the confident face points),
    feet (N, 2) px (mean of the confident ankles), ok (N,) bool: both found."""
    kp = np.asarray(keypoints, np.float64)

    def mean_of(idx: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        w = (kp[:, idx, 2] >= min_conf).astype(np.float64)
        n = w.sum(1)
        xy = (kp[:, idx, :2] * w[..., None]).sum(1) / np.maximum(n, 1)[:, None]
        return xy, n > 0

    head, h_ok = mean_of(HEAD)
    feet, f_ok = mean_of(ANKLES)
    return head, feet, h_ok & f_ok & (feet[:, 1] - head[:, 1] > 2.0)


def _up(pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(...,) radians -> (..., 3) the world's up direction in the camera frame."""
    u0 = torch.stack([torch.zeros_like(pitch), -torch.cos(pitch), -torch.sin(pitch)], -1)
    c, s = torch.cos(roll), torch.sin(roll)
    return torch.stack([c * u0[..., 0] - s * u0[..., 1], s * u0[..., 0] + c * u0[..., 1], u0[..., 2]], -1)


def _residuals(
    params: torch.Tensor, head: torch.Tensor, feet: torch.Tensor, pp: torch.Tensor
) -> torch.Tensor:
    """params (..., 4) log f, pitch, roll, log rho; head, feet (N, 2) px; pp (2,) px -> (..., N, 2) the
    predicted minus observed head, in units of each person's image height."""
    f = params[..., 0:1].exp()[..., None]  # (..., 1, 1)
    u = _up(params[..., 1], params[..., 2])[..., None, :]  # (..., 1, 3)
    rho = params[..., 3:4].exp()  # (..., 1)
    ray = torch.cat([(feet - pp) / f, torch.ones_like(feet[..., :1]).expand(*f.shape[:-2], len(feet), 1)], -1)
    down = (ray * u).sum(-1)  # < 0 for a ray that meets the ground in front of the camera
    t = rho / (-down).clamp(min=1e-6)
    top = ray * t[..., None] + u
    pred = f * top[..., :2] / top[..., 2:].clamp(min=1e-6) + pp
    size = (feet[:, 1] - head[:, 1]).clamp(min=1.0)[:, None]
    r = (pred - head) / size
    return torch.where((down < 0)[..., None], r, torch.full_like(r, 10.0))  # above the horizon: far off


def _cauchy(r: torch.Tensor, c: float) -> torch.Tensor:
    return torch.log1p((r / c) ** 2).sum((-1, -2))


def estimate_camera(
    keypoints: np.ndarray,
    image_wh: tuple[int, int],
    pp: tuple[float, float] | None = None,
    min_people: int = 20,
    max_rel_std: float = 0.15,
    scale: float = 0.15,
    focal: float | None = None,
) -> CameraEstimate | None:
    """The camera from the people's keypoints (N, 17, 3) px + confidence in an image of image_wh px with
    principal point pp (default the centre); None when they do not determine it (see the module
    docstring). scale: the Cauchy loss's scale, person heights (a person's lean and pose).

    focal (px), if given, is held fixed and only pitch, roll and height are estimated: the ground plane
    of a camera whose focal is already chosen (a level camera is then no reason to refuse, and
    focal_rel_std is 0)."""
    head, feet, ok = head_and_feet(keypoints)
    if ok.sum() < min_people:
        return None
    w, h = image_wh
    diag = float(np.hypot(w, h))
    pp_t = torch.tensor((w / 2, h / 2) if pp is None else pp, dtype=torch.float64)
    hd = torch.from_numpy(head[ok])
    ft = torch.from_numpy(feet[ok])
    # Coarse grid (log f, pitch, log rho), roll 0, then Levenberg-Marquardt on the Cauchy-weighted problem.
    log_f = (
        torch.linspace(np.log(0.3 * diag), np.log(5.0 * diag), 25, dtype=torch.float64)
        if focal is None
        else torch.tensor([np.log(focal)], dtype=torch.float64)
    )
    # Fixed focal: its column of the Jacobian is zeroed, so Levenberg-Marquardt never moves it.
    free = torch.tensor([focal is None, True, True, True], dtype=torch.float64)
    grid = torch.cartesian_prod(
        log_f,
        torch.deg2rad(torch.linspace(-20.0, 75.0, 39, dtype=torch.float64)),
        torch.zeros(1, dtype=torch.float64),
        torch.linspace(np.log(0.3), np.log(200.0), 25, dtype=torch.float64),
    )
    few = torch.from_numpy(np.random.default_rng(0).permutation(len(hd))[:400])  # enough for a start
    costs = torch.cat([_cauchy(_residuals(g, hd[few], ft[few], pp_t), scale) for g in grid.split(2048)])
    x = grid[int(costs.argmin())].clone()
    lam = 1e-3
    cost = float(_cauchy(_residuals(x, hd, ft, pp_t), scale))
    for _ in range(100):
        r = _residuals(x, hd, ft, pp_t).reshape(-1)
        jac = torch.func.jacfwd(lambda p: _residuals(p, hd, ft, pp_t).reshape(-1))(x) * free
        wgt = 1.0 / (1.0 + (r / scale) ** 2)  # IRLS weights of the Cauchy loss
        jtw = jac.T * wgt
        a, g = jtw @ jac, jtw @ r
        step = torch.linalg.solve(a + lam * torch.diag(torch.diag(a) + 1e-12) + torch.diag(1 - free), -g)
        new = float(_cauchy(_residuals(x + step, hd, ft, pp_t), scale))
        if new < cost:
            x, cost, lam = x + step, new, max(lam / 3, 1e-9)
            if float(step.abs().max()) < 1e-7:
                break
        else:
            lam *= 4
            if lam > 1e8:
                break
    r = _residuals(x, hd, ft, pp_t).reshape(-1)
    jac = torch.func.jacfwd(lambda p: _residuals(p, hd, ft, pp_t).reshape(-1))(x) * free
    wgt = 1.0 / (1.0 + (r / scale) ** 2)
    inliers = wgt > 0.5
    sigma2 = float((wgt * r**2).sum() / max(float(wgt.sum()) - float(free.sum()), 1.0))
    cov = torch.linalg.pinv((jac.T * wgt) @ jac) * sigma2
    rel_std = float(cov[0, 0].clamp(min=0).sqrt())  # std of log f (0 when it is fixed)
    n = int(inliers.reshape(-1, 2).all(1).sum())
    if not np.isfinite(rel_std) or rel_std > max_rel_std or n < min_people:
        return None
    up = _up(x[1], x[2]).numpy()
    return CameraEstimate(
        focal=float(x[0].exp()) if focal is None else float(focal),
        pitch_deg=math.degrees(float(x[1])), roll_deg=math.degrees(float(x[2])),
        height=float(x[3].exp()), focal_rel_std=rel_std, people=n,
        plane=(float(up[0]), float(up[1]), float(up[2]), float(x[3].exp())),
    )  # fmt: skip


# focal_source values of a focal that is known, not guessed (frame_camera; the crowd step's plane).
FOCAL_GIVEN, FOCAL_ESTIMATED = "given", "estimated"
KNOWN_FOCAL = (FOCAL_GIVEN, FOCAL_ESTIMATED)


@dataclass(frozen=True)
class FrameCamera:
    """A frame's intrinsics: focal, cx, cy px, and how the focal was chosen (focal_source: given,
    diagonal, estimated, or diagonal because the people do not determine it; estimate: what
    estimate_camera found, as a dict, when it was asked)."""

    focal: float
    cx: float
    cy: float
    focal_source: str
    estimate: dict[str, Any] | None = None

    @property
    def pp(self) -> tuple[float, float]:
        return self.cx, self.cy

    @property
    def focal_known(self) -> bool:
        """Given or estimated, not the diagonal guess."""
        return self.focal_source in KNOWN_FOCAL

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def frame_camera(image_wh: tuple[int, int], camera: CameraConfig, keypoints: np.ndarray) -> FrameCamera:
    """The scene's camera for a frame of image_wh px: `auto` focal = the image diagonal; `estimate` =
    from the people's keypoints (N, 17, 3) px (the diagonal when they do not determine it); a number =
    given; `auto` centre = the image centre."""
    from tasks.regress import default_focal

    width, height = image_wh
    cx = width / 2 if camera.cx == "auto" else float(camera.cx)
    cy = height / 2 if camera.cy == "auto" else float(camera.cy)
    if camera.focal == "estimate":
        est = estimate_camera(keypoints, (width, height), (cx, cy))
        if est is not None:
            return FrameCamera(est.focal, cx, cy, FOCAL_ESTIMATED, asdict(est))
        return FrameCamera(default_focal(width, height), cx, cy, "diagonal (not determined by the people)")
    if camera.focal == "auto":
        return FrameCamera(default_focal(width, height), cx, cy, "diagonal")
    return FrameCamera(float(camera.focal), cx, cy, FOCAL_GIVEN)
