"""Our ground truth of a frame (`truth.json`): LargeCrowd-style annotations plus camera, ground and body.

```
{"image_shape": {"height": H, "width": W},
 "intrinsics": [[f,0,cx],[0,f,cy],[0,0,1]],
 "ground_plane": [A, B, C, D],
 "body_model": {"name": str, "sha256": str},
 "frame_info": {"<image file name>": [person, ...]}}
person = {"bbox": [x1,y1,x2,y2], "keypoints": 17 x [x/W, y/H, v] or null, "type": ...,
          "hvip2d": [x, y], "hvip3d": [x, y, z], "torso_center": [x, y, z],
          "smpl": {"pose": [72], "shape": [10], "transl": [3]}, "visibility": v}
```
Camera frame: x right, y down, z forward; 3D values in metres, 2D values in full-resolution pixels,
except keypoints, which are ratios of the image size (as in LargeCrowd). The ground plane is the set of
camera-frame points X with A x + B y + C z + D = 0, (A, B, C) a unit normal. `smpl.transl` follows
predict.json's `trans_cam`: it is added to the raw SMPL output. One file normally holds one frame;
several frames seen by the same still camera may share a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.io import atomic_write_text, describe_validation_error, load_json
from schemas.predict import (
    N_POSE,
    N_SHAPE,
    Finite,
    IntrinsicMatrix,
    Vec3,
)

N_KEYPOINTS = 17
PERSON_TYPES = ("normal", "severe_occlusion", "truncation", "ghost")
# The ground normal need only be unit to about 1 %: hand-written planes carry 3 decimals. The evaluator
# uses the exact projection onto the plane whatever the normal's length.
_UNIT_TOLERANCE = 0.01

SUPPORT_PATTERN = r"^(floor|level_[1-9][0-9]*|seat|bicycle|airborne)$"

Keypoint = tuple[Finite, Finite, Annotated[int, Field(ge=0, le=2)]]


class TruthError(ValueError):
    """A truth.json that cannot be read. The message is one line naming the file."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageShape(_Model):
    height: Annotated[int, Field(gt=0)]
    width: Annotated[int, Field(gt=0)]


class BodyModelInfo(_Model):
    """The body model the SMPL parameters are for (a licensed SMPL file or our builtin one)."""

    name: Annotated[str, Field(min_length=1)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class SmplParams(_Model):
    pose: Annotated[list[Finite], Field(min_length=N_POSE, max_length=N_POSE)] = Field(
        description="axis-angle, radians, SMPL order"
    )
    shape: Annotated[list[Finite], Field(min_length=N_SHAPE, max_length=N_SHAPE)]
    transl: Vec3 = Field(description="metres, camera frame, added to the raw SMPL output")


class PersonTruth(_Model):
    """One annotated person."""

    bbox: tuple[Finite, Finite, Finite, Finite] = Field(description="x1, y1, x2, y2, full-res pixels")
    keypoints: Annotated[list[Keypoint], Field(min_length=N_KEYPOINTS, max_length=N_KEYPOINTS)] | None = (
        Field(description="COCO-17: x/W, y/H, v (0 outside the image, 1 occluded, 2 visible)")
    )
    type: Literal["normal", "severe_occlusion", "truncation", "ghost"]
    hvip2d: tuple[Finite, Finite] = Field(description="hvip3d in the image, pixels")
    hvip3d: Vec3 = Field(description="torso centre projected onto the ground plane, metres")
    torso_center: Vec3 = Field(description="mean of SMPL hips and shoulders, metres")
    smpl: SmplParams
    visibility: Annotated[Finite, Field(ge=0, le=1)] = Field(description="visible fraction of the body")
    support: Annotated[str, Field(pattern=SUPPORT_PATTERN)] | None = Field(
        default=None,
        description=(
            "what the person rests on: floor (the ground plane), level_k (the raised level "
            "Truth.levels[k - 2]: the ground is the first), seat (a bench or the ground, seated), bicycle, "
            "airborne (jumping); None: not annotated"
        ),
    )
    stature: Annotated[Finite, Field(gt=0, le=3)] | None = Field(
        default=None, description="rest-pose height of the body, metres (the SMPL shape's, standing straight)"
    )
    surface_height: Finite | None = Field(
        default=None, description="height above the ground plane of the surface under the person, metres"
    )

    @field_validator("bbox")
    @classmethod
    def _ordered(cls, v: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        # A box of zero area would make every OKS against it undefined.
        if not (v[2] > v[0] and v[3] > v[1]):
            raise ValueError(f"need x2 > x1 and y2 > y1, got {list(v)}")
        return v


@dataclass(frozen=True)
class TruthArrays:
    """One frame of truth as float64 arrays, G people."""

    K: np.ndarray  # (3, 3) pixels
    plane: np.ndarray  # (4,) A, B, C, D (camera frame, metres)
    height: int
    width: int
    keypoints: np.ndarray  # (G, 17, 2) full-res pixels; NaN where a person's keypoints are null
    keypoint_visibility: np.ndarray  # (G, 17) int8, 0 / 1 / 2 (0 where null)
    bbox: np.ndarray  # (G, 4) x1, y1, x2, y2 pixels
    torso: np.ndarray  # (G, 3) metres
    hvip3d: np.ndarray  # (G, 3) metres
    types: tuple[str, ...]  # (G,)
    support: tuple[str | None, ...] = ()  # (G,) PersonTruth.support, None where not annotated
    stature: np.ndarray | None = None  # (G,) metres, NaN where not annotated


class Truth(_Model):
    """A truth.json document."""

    image_shape: ImageShape
    intrinsics: IntrinsicMatrix = Field(description="K, pixels")
    ground_plane: tuple[Finite, Finite, Finite, Finite] = Field(description="A, B, C, D; unit (A, B, C)")
    body_model: BodyModelInfo
    frame_info: Annotated[dict[str, list[PersonTruth]], Field(min_length=1)]
    levels: list[Annotated[Finite, Field(gt=0)]] = Field(
        default_factory=list,
        description="heights (m) above the ground plane of the raised levels; support level_k: the (k-1)-th",
    )

    @field_validator("ground_plane")
    @classmethod
    def _unit_normal(cls, v: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        norm = float(np.linalg.norm(v[:3]))
        if abs(norm - 1.0) > _UNIT_TOLERANCE:
            raise ValueError(f"(A, B, C) must be a unit normal, its length is {norm:.6g}")
        return v

    @model_validator(mode="after")
    def _named_frames(self) -> Truth:
        if any(not name.strip() for name in self.frame_info):
            raise ValueError("frame_info: a frame name is empty")
        return self

    @property
    def frames(self) -> list[str]:
        return list(self.frame_info)

    def arrays(self, frame: str | None = None) -> TruthArrays:
        """The people of `frame` (default: the file's only frame) as arrays."""
        if frame is None:
            if len(self.frame_info) != 1:
                raise ValueError(f"this truth holds {len(self.frame_info)} frames: name one")
            frame = next(iter(self.frame_info))
        people = self.frame_info[frame]
        g = len(people)
        h, w = self.image_shape.height, self.image_shape.width
        kp = np.full((g, N_KEYPOINTS, 2), np.nan)
        vis = np.zeros((g, N_KEYPOINTS), dtype=np.int8)
        for i, p in enumerate(people):
            if p.keypoints is not None:
                a = np.asarray(p.keypoints, dtype=np.float64)
                kp[i] = a[:, :2] * (w, h)
                vis[i] = a[:, 2]
        return TruthArrays(
            K=np.asarray(self.intrinsics, dtype=np.float64),
            plane=np.asarray(self.ground_plane, dtype=np.float64),
            height=h,
            width=w,
            keypoints=kp,
            keypoint_visibility=vis,
            bbox=np.asarray([p.bbox for p in people], dtype=np.float64).reshape(g, 4),
            torso=np.asarray([p.torso_center for p in people], dtype=np.float64).reshape(g, 3),
            hvip3d=np.asarray([p.hvip3d for p in people], dtype=np.float64).reshape(g, 3),
            types=tuple(p.type for p in people),
            support=tuple(p.support for p in people),
            stature=np.array([np.nan if p.stature is None else p.stature for p in people], np.float64),
        )


def read_truth(path: Path | str) -> Truth:
    """Read and validate a truth.json. Raises TruthError naming the file, frame, person and field."""
    path = Path(path)
    data = load_json(path, TruthError)
    if not isinstance(data, dict):
        raise TruthError(f"{path}: expected a JSON object (image_shape, ...), got {type(data).__name__}")
    try:
        return Truth.model_validate(data)
    except ValidationError as e:
        raise TruthError(f"{path}: {describe_validation_error(e, 'frame_info')}") from None


def truth_json(truth: Truth) -> str:
    """The file text of `truth`: the same object always gives the same bytes (keys sorted, compact)."""
    data = truth.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"


def write_truth(truth: Truth, path: Path | str) -> None:
    """Write `truth` atomically (temporary file in the same directory, then os.replace)."""
    atomic_write_text(Path(path), truth_json(truth))
