"""What synthetic people stand, sit or ride on: scene presets, the poses of seated, crouching, riding
and jumping people, children's shapes, a raised terrace, and the props (benches, bicycles) drawn with
their people.

Camera frame as in tasks/synth.py (x right, y down, z forward, metres). SMPL body frame: x the subject's
left, y up, z facing; in it hip flexion is a rotation about -x, knee flexion about +x, a forward lean
of the spine about +x, plantar flexion of the ankle about +x (checked against the body model in
tests/tasks/test_scenery.py).

Presets (`input.synthetic.preset`), shares of groups by activity (a group of 1-5 people; in a group of
a rider, a jumper or a croucher only the first person does it, the others stand beside):
- plaza: everyone stands or walks on one floor (the first-generation world, unchanged);
- stadium_entrance: a raised terrace 0.5-4 m high over the far part of one side of the ground (people
  on it stand on level_2), benches, people sitting on the ground, cyclists, jumpers, crouchers and
  children; of the people (seeds 11-15, 500 each): floor 64%, level_2 19%, seat 13%, airborne 3%,
  bicycle 2%; 15% under 1.5 m (children and short adults);
- park: no terrace, a ground sloped up to 3 degrees, more people seated, more cyclists and children:
  floor 69%, seat 25%, bicycle 3%, airborne 3%; 19% under 1.5 m.
A rider needs room for the bicycle: one with anyone within 1.2 m walks instead.

Poses: seated, crouching, riding and jumping people keep a real crowd pose's upper body
(tasks/data/poses_smpl24.npz, mirrored) and get procedural legs (hip and knee flexion drawn per leg,
a pedalling cycle with a forward lean for riders), all within tasks/poses.py's joint limits.
Children: the neutral body's height component (beta 0) taken below the adult range, to statures of
1.05-1.5 m; its head grows relative to the body as a child's does (0.18 of the stature at 1.1 m
against 0.145 for an adult) but the proportions are an extrapolation of adult shapes, not a child
shape space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tasks.models.body import SMPL_JOINT_NAMES, BodyModel
from tasks.poses import within_limits

_J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}

ACTIVITIES = ("stand", "child", "bench", "ground_sit", "crouch", "ride", "jump")
# What each activity rests on (the truth's `support`; "level_2" replaces "floor" on the terrace: levels are
# counted with the ground as the first, as tasks/support.py labels them).
SUPPORT_OF = {
    "stand": "floor", "child": "floor", "crouch": "floor", "bench": "seat", "ground_sit": "seat",
    "ride": "bicycle", "jump": "airborne",
}  # fmt: skip
SUPPORTS = ("floor", "level_2", "seat", "bicycle", "airborne")
_SOLO = ("ride", "jump", "crouch")  # one person of the group does it
CHILD_STATURE_M = (1.05, 1.5)
JUMP_HEIGHT_M = (0.2, 0.6)
ANKLE_HEIGHT_RIDING_M = 0.30  # mean of the two ankles above the ground: a bicycle's pedal axle


@dataclass(frozen=True)
class Preset:
    """mix: activity -> share of groups; terrace: (min, max) height m of a raised level, or None;
    slope_deg: the steepest ground slope drawn (the scene's max_slope_deg wins when larger)."""

    mix: dict[str, float]
    terrace: tuple[float, float] | None = None
    slope_deg: float = 0.0


PRESETS = {
    "plaza": Preset({"stand": 1.0}),
    "stadium_entrance": Preset(
        {
            "stand": 0.62,
            "child": 0.08,
            "bench": 0.08,
            "ground_sit": 0.05,
            "crouch": 0.05,
            "ride": 0.06,
            "jump": 0.06,
        },
        terrace=(0.5, 4.0),
    ),
    "park": Preset(
        {
            "stand": 0.42,
            "child": 0.14,
            "bench": 0.14,
            "ground_sit": 0.1,
            "crouch": 0.05,
            "ride": 0.1,
            "jump": 0.05,
        },
        slope_deg=3.0,
    ),
}


@dataclass(frozen=True)
class Terrace:
    """A raised level: ground points more than `start` m forward of the point below the camera and
    more than `edge` m to the `side` (+1 right, -1 left) stand `height` m higher. fwd, right (3,) unit
    camera-frame directions along the ground."""

    fwd: np.ndarray
    right: np.ndarray
    start: float
    edge: float
    side: int
    height: float

    def contains(self, d: np.ndarray | float, x: np.ndarray | float) -> np.ndarray:
        """Forward d and lateral x (m, same shapes) -> bool: on the terrace's footprint."""
        return (np.asarray(d) > self.start) & (self.side * np.asarray(x) > self.edge)


def draw_terrace(rng: np.random.Generator, preset: Preset, near: float, far: float,
                 half_w_per_m: float, fwd: np.ndarray, right: np.ndarray) -> Terrace | None:  # fmt: skip
    """A terrace over the far part of one side of the view, or None if the preset has none. near, far
    (m) the forward range the camera sees of the ground; half_w_per_m the view's half width (m) per
    metre forward."""
    if preset.terrace is None:
        return None
    start = near + rng.uniform(0.2, 0.45) * (far - near)
    side = int(rng.choice([-1, 1]))
    edge = rng.uniform(0.0, 0.4) * half_w_per_m * start
    return Terrace(fwd, right, start, edge, side, float(rng.uniform(*preset.terrace)))


def activities(rng: np.random.Generator, preset: Preset, group: np.ndarray) -> np.ndarray:
    """(N,) activity of each person given group ids (N,): one draw per group from the preset's mix."""
    names = list(preset.mix)
    share = np.array([preset.mix[a] for a in names])
    out = np.full(len(group), "stand", dtype=object)
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        a = names[int(rng.choice(len(names), p=share / share.sum()))]
        if a in _SOLO:
            out[members[0]] = a
        else:
            out[members] = a
    return out.astype(str)


def _rot_x(deg: np.ndarray) -> np.ndarray:
    """(n,) degrees -> (n, 3) axis-angle about the body's x axis."""
    r = np.zeros((len(deg), 3))
    r[:, 0] = np.radians(deg)
    return r


def posed(kind: str, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 24, 3) real crowd poses (axis-angle rad) -> the same people doing `kind`: legs (and for
    riders the spine and arms) replaced by procedural joint angles, drawn per leg."""
    p = np.array(base, dtype=np.float64)
    n = len(p)
    if n == 0 or kind in ("stand", "child"):
        return p

    def u(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, n)

    legs: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # side -> (hip flexion, knee flexion) degrees
    if kind == "bench":
        legs = {s: (u(75, 95), u(75, 100)) for s in "lr"}
        p[:, _J["spine1"]] = _rot_x(u(-5, 10))
    elif kind == "ground_sit":
        legs = {s: (u(75, 90), u(10, 70)) for s in "lr"}
        p[:, _J["spine1"]] = _rot_x(u(0, 15))
    elif kind == "crouch":
        legs = {s: (u(100, 125), u(115, 145)) for s in "lr"}
        p[:, _J["spine1"]] = _rot_x(u(10, 25))
        for s in "lr":
            p[:, _J[f"{s}_ankle"]] = _rot_x(-u(15, 30))  # dorsiflexion
    elif kind == "jump":
        legs = {s: (u(10, 40), u(20, 60)) for s in "lr"}
        for s in "lr":
            p[:, _J[f"{s}_ankle"]] = _rot_x(u(10, 30))  # toes pointing down
    elif kind == "ride":
        phase = u(0, 2 * math.pi)
        legs = {
            "l": (47 + 22 * np.cos(phase), 72 + 37 * np.cos(phase)),
            "r": (47 - 22 * np.cos(phase), 72 - 37 * np.cos(phase)),
        }
        p[:, _J["spine1"]] = _rot_x(u(12, 25))
        p[:, _J["spine2"]] = _rot_x(u(5, 15))
        p[:, _J["spine3"]] = 0.0
        # Arms forward and down to the handlebar, elbows a little bent.
        p[:, _J["l_shoulder"]] = np.stack([np.zeros(n), -u(1.0, 1.2), -u(0.5, 0.7)], 1)
        p[:, _J["r_shoulder"]] = np.stack([np.zeros(n), u(1.0, 1.2), u(0.5, 0.7)], 1)
        p[:, _J["l_elbow"]] = np.stack([np.zeros(n), -u(0.1, 0.4), np.zeros(n)], 1)
        p[:, _J["r_elbow"]] = np.stack([np.zeros(n), u(0.1, 0.4), np.zeros(n)], 1)
    else:
        raise ValueError(f"unknown activity {kind!r}; known: {', '.join(ACTIVITIES)}")
    for s, (hip, knee) in legs.items():
        abduct = rng.uniform(0, 0.15, n) * (1 if s == "l" else -1)  # knees a little apart
        p[:, _J[f"{s}_hip"]] = _rot_x(-hip) + np.stack([np.zeros(n), np.zeros(n), abduct], 1)
        p[:, _J[f"{s}_knee"]] = _rot_x(knee)
    if not within_limits(p).all():
        raise AssertionError(f"{kind}: a procedural pose left the joint limits")
    return p


def child_shapes(rng: np.random.Generator, n: int, body: BodyModel) -> np.ndarray:
    """(n, 10) betas of children with statures drawn from CHILD_STATURE_M: beta 0 solved for the
    stature (it is linear in beta 0 for the neutral body), the rest ~ N(0, 0.5)."""
    shape = np.clip(rng.normal(0.0, 0.5, (n, 10)), -1.5, 1.5)
    shape[:, 0] = 0.0
    base = body.statures(shape)
    probe = shape.copy()
    probe[:, 0] = 1.0
    per_unit = body.statures(probe) - base
    target = rng.uniform(*CHILD_STATURE_M, n)
    shape[:, 0] = (target - base) / per_unit
    return shape


@dataclass(frozen=True)
class Prop:
    """A rigid object drawn just before its person (owner): verts (V, 3) camera frame m, faces (F, 3)
    double-sided (each triangle in both windings), rgb (3,)."""

    owner: int
    verts: np.ndarray
    faces: np.ndarray
    rgb: np.ndarray


def _double(faces: np.ndarray) -> np.ndarray:
    return np.concatenate([faces, faces[:, ::-1]])


def bench(owner: int, centre: np.ndarray, facing: np.ndarray, up: np.ndarray, top: float,
          rgb: np.ndarray) -> Prop:  # fmt: skip
    """A bench block under a seated person: `centre` (3,) the point on the surface below the pelvis,
    facing (3,) unit along the ground, up (3,), top (m) the seat's height above the surface."""
    left = np.cross(up, facing)
    corners = [
        centre + a * facing + b * left + c * up for a in (-0.25, 0.2) for b in (-0.3, 0.3) for c in (0.0, top)
    ]
    quads = [(0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5)]
    tris = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    return Prop(owner, np.array(corners), _double(tris), rgb)


def _strip(a: np.ndarray, b: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """A thin quad from a to b (3,) facing the camera (at the origin): 4 vertices, 2 triangles."""
    d = b - a
    w = np.cross(d, (a + b) / 2)
    w = w / max(float(np.linalg.norm(w)), 1e-12) * width / 2
    return np.array([a - w, a + w, b + w, b - w]), np.array([[0, 1, 2], [0, 2, 3]])


def bicycle(owner: int, ground: np.ndarray, facing: np.ndarray, up: np.ndarray, saddle: np.ndarray,
            bar: np.ndarray, rgb: np.ndarray) -> Prop:  # fmt: skip
    """A bicycle under a rider: ground (3,) the point on the ground below the pedal axle, facing (3,)
    unit along the ground, saddle and bar (3,) the rider's pelvis and hands; wheels 0.34 m in radius."""
    radius, seg = 0.34, 24
    rear = ground - 0.42 * facing + radius * up
    front = ground + 0.62 * facing + radius * up
    axle = ground + ANKLE_HEIGHT_RIDING_M * up
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    a = np.linspace(0, 2 * math.pi, seg, endpoint=False)
    ring = np.cos(a)[:, None] * facing + np.sin(a)[:, None] * up  # (seg, 3)
    k = np.arange(seg)
    quads = np.stack([k, (k + 1) % seg, seg + (k + 1) % seg, seg + k], 1)
    tris = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    for hub in (rear, front):
        parts.append((np.concatenate([hub + radius * ring, hub + (radius - 0.04) * ring]), tris))
    for p, q in ((rear, axle), (rear, saddle), (axle, saddle), (saddle, bar), (axle, bar), (bar, front)):
        parts.append(_strip(p, q, 0.035))
    verts, faces, off = [], [], 0
    for v, f in parts:
        verts.append(v)
        faces.append(f + off)
        off += len(v)
    return Prop(owner, np.concatenate(verts), _double(np.concatenate(faces)), rgb)
