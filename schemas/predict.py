"""The GigaCrowd submission `predict.json` (shared/reference/gigacrowd.md), as typed models.

```
{ "<frame>.jpg": {
    "Intrinsic_matrix": [[f,0,cx],[0,f,cy],[0,0,1]],
    "person_list": [ {"pose": [72 axis-angle, SMPL order], "shape": [10], "trans_cam": [3],
                      "scale_smpl": 1.0, "gender": "neutral"} ] } }
```
Camera frame: x right, y down, z forward, metres. `trans_cam` is added to the raw (un-centred) SMPL
output after scaling: points_cam = scale_smpl * SMPL(pose, shape) + trans_cam. Every key is required
and unknown keys are errors: the file goes to an evaluator we cannot see, so what we write must be
exactly what it reads.

"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from schemas.io import atomic_write_text, describe_validation_error, load_json

N_POSE, N_SHAPE = 72, 10

# Strict: a quoted number or a boolean in a results file is a bug in whatever wrote it, not a number.
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Vec3 = tuple[Finite, Finite, Finite]


def _check_intrinsics(k: list[Vec3]) -> list[Vec3]:
    # Skew (K[0][1]) is allowed: the evaluator projects with the whole matrix.
    (fx, _, _), (zero, fy, _), bottom = k
    if tuple(bottom) != (0.0, 0.0, 1.0):
        raise ValueError(f"last row must be [0, 0, 1], got {list(bottom)}")
    if zero != 0.0:
        raise ValueError(f"K[1][0] must be 0, got {zero}")
    if fx <= 0 or fy <= 0:
        raise ValueError(f"focal lengths K[0][0], K[1][1] must be > 0, got {fx}, {fy}")
    return k


IntrinsicMatrix = Annotated[list[Vec3], Field(min_length=3, max_length=3), AfterValidator(_check_intrinsics)]


class PredictionsError(ValueError):
    """A predict.json that cannot be read as a submission. The message is one line naming the file."""


class PersonPrediction(BaseModel):
    """One predicted person: SMPL parameters and the similarity that places the body in the camera frame."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pose: Annotated[list[Finite], Field(min_length=N_POSE, max_length=N_POSE)] = Field(
        description="axis-angle, radians: global orient (3) then 23 body joints (69), SMPL order"
    )
    shape: Annotated[list[Finite], Field(min_length=N_SHAPE, max_length=N_SHAPE)] = Field(
        description="SMPL betas"
    )
    trans_cam: Vec3 = Field(description="metres, camera frame, added after scaling the raw SMPL output")
    scale_smpl: Annotated[Finite, Field(gt=0)] = Field(description="uniform scale of the raw SMPL output")
    gender: Literal["neutral", "male", "female"] = Field(
        description="the challenge evaluates the neutral model whatever is written here"
    )


class PredictionArrays(NamedTuple):
    """One frame's predictions as arrays (float64), N people."""

    K: np.ndarray  # (3, 3) pixels
    pose: np.ndarray  # (N, 72) axis-angle, radians
    shape: np.ndarray  # (N, 10)
    trans_cam: np.ndarray  # (N, 3) metres
    scale_smpl: np.ndarray  # (N,)


class FramePrediction(BaseModel):
    """All predicted people of one frame and the camera they were predicted with."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    intrinsic_matrix: IntrinsicMatrix = Field(alias="Intrinsic_matrix", description="K, pixels")
    person_list: list[PersonPrediction]

    def to_arrays(self) -> PredictionArrays:
        """The frame as arrays; an empty frame gives (0, 72), (0, 10), (0, 3) and (0,) arrays."""
        people = self.person_list
        return PredictionArrays(
            K=np.asarray(self.intrinsic_matrix, dtype=np.float64),
            pose=np.asarray([p.pose for p in people], dtype=np.float64).reshape(-1, N_POSE),
            shape=np.asarray([p.shape for p in people], dtype=np.float64).reshape(-1, N_SHAPE),
            trans_cam=np.asarray([p.trans_cam for p in people], dtype=np.float64).reshape(-1, 3),
            scale_smpl=np.asarray([p.scale_smpl for p in people], dtype=np.float64).reshape(-1),
        )

    @classmethod
    def from_arrays(
        cls,
        K: np.ndarray,
        pose: np.ndarray,
        shape: np.ndarray,
        trans_cam: np.ndarray,
        scale_smpl: np.ndarray | float = 1.0,
        gender: Literal["neutral", "male", "female"] = "neutral",
    ) -> FramePrediction:
        """Build and validate a frame from arrays.

        K (3, 3) pixels; pose (N, 72) axis-angle radians; shape (N, 10); trans_cam (N, 3) metres;
        scale_smpl (N,) or one number for everybody.
        """
        pose = np.asarray(pose, dtype=np.float64).reshape(-1, N_POSE)
        n = len(pose)
        shape = np.asarray(shape, dtype=np.float64).reshape(n, N_SHAPE)
        trans_cam = np.asarray(trans_cam, dtype=np.float64).reshape(n, 3)
        scale = np.broadcast_to(np.asarray(scale_smpl, dtype=np.float64), (n,))
        people = [
            {
                "pose": pose[i].tolist(),
                "shape": shape[i].tolist(),
                "trans_cam": trans_cam[i].tolist(),
                "scale_smpl": float(scale[i]),
                "gender": gender,
            }
            for i in range(n)
        ]
        return cls.model_validate(
            {"Intrinsic_matrix": np.asarray(K, dtype=np.float64).tolist(), "person_list": people}
        )


_PREDICTIONS = TypeAdapter(dict[str, FramePrediction])


def read_predictions(path: Path | str) -> dict[str, FramePrediction]:
    """Read and validate a predict.json. Raises PredictionsError naming the file, frame and field."""
    path = Path(path)
    data = load_json(path, PredictionsError)
    if not isinstance(data, dict):
        raise PredictionsError(
            f"{path}: expected a JSON object mapping frame names to predictions, got {type(data).__name__}"
        )
    if "" in data:
        raise PredictionsError(f"{path}: a frame name is empty")
    try:
        return _PREDICTIONS.validate_python(data)
    except ValidationError as e:
        raise PredictionsError(f"{path}: {describe_validation_error(e, None)}") from None


def predictions_json(preds: Mapping[str, FramePrediction]) -> str:
    """The predict.json text of `preds`: frames sorted by name, compact, one trailing newline."""
    data = {name: preds[name].model_dump(mode="json", by_alias=True) for name in sorted(preds)}
    return json.dumps(data, separators=(",", ":"), allow_nan=False) + "\n"


def write_predictions(preds: Mapping[str, FramePrediction], path: Path | str) -> None:
    """Write `preds` as predict.json, atomically (see atomic_write_text)."""
    atomic_write_text(Path(path), predictions_json(preds))
