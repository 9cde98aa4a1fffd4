"""File I/O shared by every contract and stage: atomic outputs, and one-line errors for JSON files.

Every output is built under a temporary name beside its final one (`.tmp-<name>-<random>`) and renamed
into place only when complete, so a crash leaves no partial file or directory under a final name;
`pipeline/rundir.py` sweeps the leftovers at the start of the next run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"


def remove(path: Path) -> None:
    """Delete a file or a directory tree, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path to build `final` at (file or directory); install it on success.

    On an exception the temporary is removed and an existing `final` is left untouched. Replacing an
    existing directory moves it aside first (`.old-...`), so a crash between the two renames leaves
    the old copy recoverable and the sweep cleans it.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written at {tmp}")
        old = None
        if final.is_dir() and not final.is_symlink():
            old = final.with_name(f"{OLD_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
        os.replace(tmp, final)
    except BaseException:
        remove(tmp)
        raise
    _fsync_dir(final.parent)
    if old is not None:
        remove(old)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically: a reader sees the old file or the new one, never half of one."""
    with atomic_output(Path(path)) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


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
