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

The small JSON helpers here (`atomic_write_text`, `describe_validation_error`) are shared by the other
file contracts of this package (schemas/truth.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

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


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loc(parts: tuple[int | str, ...]) -> str:
    """('person_list', 3, 'pose') -> 'person_list[3].pose'."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def describe_validation_error(e: ValidationError, frames_under: str | None) -> str:
    """The first problem of `e` in one line: "[frame 'x.jpg': [person 3: ]]key.path: message".

    `frames_under`: the key whose children are frames ("frame_info" in truth.json); None when the
    top-level keys are the frames (predict.json).
    """
    errors = e.errors()
    err = errors[0]
    loc = tuple(err["loc"])
    where = ""
    if frames_under is None and loc:
        where, loc = f"frame {loc[0]!r}: ", loc[1:]
    elif frames_under is not None and len(loc) >= 2 and loc[0] == frames_under:
        where, loc = f"frame {loc[1]!r}: ", loc[2:]
        if loc and isinstance(loc[0], int):
            where, loc = f"{where}person {loc[0]}: ", loc[1:]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        if not isinstance(err.get("input"), dict | list | tuple) and err["type"] != "missing":
            msg += f", got {_short(err.get('input'))}"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}{_loc(loc) or '(top level)'}: {msg}{more}"


def load_json(path: Path, error: type[ValueError]) -> Any:
    """Parse a JSON file, raising `error` (one line naming the file) when it is missing or not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for a moment, in every thread)."""
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    return 0o022


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory, fsync and os.replace.

    A reader sees the old file or the new one, never a half-written one; the temporary is removed on
    failure (its name starts with '.tmp-', which the run-directory sweep also removes).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        # mkstemp makes the file owner-only; give it the mode any new file gets (0666 less the umask).
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
