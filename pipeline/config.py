"""scene.yaml -> a validated Scene, parsed in this one place, with errors a user can act on.

Every error is one line naming the file, the key path, the bad value and what is allowed.
Relative paths in the file are relative to the file's directory, so a scene runs the same from any
working directory.
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from schemas.layout import SYNTHETIC_DIR, TRUTH_FILE
from schemas.scene import NAME_PATTERN, Scene, SyntheticConfig


class ConfigError(ValueError):
    """A scene that cannot run as written. The message is one line."""


@dataclass(frozen=True)
class Frame:
    """One input frame: `name` is its directory under the scene's run directory.

    A synthetic frame also carries the settings that generate it (`path` and `truth` exist once it has
    been generated; both are cached under input.synthetic.cache, keyed by those settings).
    """

    name: str
    path: Path
    synth: SyntheticConfig | None = None

    @property
    def truth(self) -> Path | None:
        return self.path.parent / TRUTH_FILE if self.synth is not None else None


@dataclass(frozen=True)
class ResolvedScene:
    """A scene with its name, output directory and frame list resolved against the scene file."""

    scene: Scene
    name: str
    source: Path | None
    output: Path
    frames: tuple[Frame, ...]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class of a field annotated `Model` or `Model | None`, else None."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    models = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if len(models) == 1 else None


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Names of the keys allowed at `loc` (the parent of an unknown key)."""
    current: type[BaseModel] | None = model
    for part in loc:
        field = current.model_fields.get(part) if isinstance(part, str) and current else None
        current = _model_of(field.annotation) if field else None
        if current is None:
            return []
    return list(current.model_fields) if current else []


def _key(part: int | str) -> str:
    """A key as shown in a key path: quoted when it is empty or has unprintable characters (newlines)."""
    text = str(part)
    return text if text and text.isprintable() else repr(part)


def _format_error(err: dict[str, Any], where: str) -> str:
    loc = tuple(err["loc"])
    path = ".".join(_key(p) for p in loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(Scene, loc[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        return f"{where}: {path}: unknown key{hint}; allowed keys here: {', '.join(allowed)}"
    if kind == "missing":
        return f"{where}: {path}: required key is missing"
    value = _short(err.get("input"))
    ctx = err.get("ctx") or {}
    if kind == "literal_error":
        return f"{where}: {path}: {value} is not allowed; expected {ctx.get('expected', '')}"
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {path}: {value} is invalid: {message}"


def _field_path(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop pydantic's union-branch tags (e.g. "literal['auto']") from an error location."""
    path: list[int | str] = []
    current: type[BaseModel] | None = Scene
    for part in loc:
        if isinstance(part, int):
            path.append(part)
        elif current is not None:  # below a plain (non-model) field only union-branch tags remain
            path.append(part)
            field = current.model_fields.get(part)
            current = _model_of(field.annotation) if field else None
    return tuple(path)


def _merge_union_branches(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One error per key path: pydantic reports a failed union once per branch."""
    by_path: dict[tuple[int | str, ...], dict[str, Any]] = {}
    for err in errors:
        loc = _field_path(tuple(err["loc"]))
        if loc in by_path:
            prev = by_path[loc]
            merged = f"{prev['msg']}; or {err['msg']}"
            by_path[loc] = {"type": "union", "loc": loc, "input": prev.get("input"), "msg": merged}
        else:
            by_path[loc] = {**err, "loc": loc}
    return list(by_path.values())


def parse_scene(data: Any, where: str = "scene") -> Scene:
    """Validate a parsed YAML document. Raises ConfigError with one line per problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys (input:, output:, ...), got {_short(data)}")
    try:
        return Scene.model_validate(data)
    except ValidationError as e:
        lines = [_format_error(err, where) for err in _merge_union_branches(e.errors())]  # type: ignore[arg-type]
        raise ConfigError("\n".join(lines)) from None


def load_scene(path: Path) -> Scene:
    """Read and validate a scene file."""
    if not path.is_file():
        raise ConfigError(f"scene file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}{at}: invalid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (UTF-8 expected)") from None
    return parse_scene(data, str(path))


def frame_name(path: Path) -> str:
    """A frame's directory name: the file stem with anything but [A-Za-z0-9._-] replaced by '_'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", path.stem).lstrip(".-_") or "frame"
    return name[:128]


def resolve_frames(patterns: str | list[str], base: Path) -> tuple[Frame, ...]:
    """Expand paths and glob patterns (relative to `base`) into frames, in the order given.

    Raises ConfigError when a path does not exist, a glob matches nothing, or two frames would get the
    same directory name.
    """
    items = [patterns] if isinstance(patterns, str) else patterns
    paths: list[Path] = []
    for item in items:
        rel = Path(item).expanduser()
        p = rel if rel.is_absolute() else base / rel
        if p.is_file():  # an existing file is taken as named, even with glob characters in its name
            paths.append(p)
        elif glob.has_magic(str(item)):
            # Only the item is a pattern: glob characters in the scene's directory name are literal.
            pattern = str(rel) if rel.is_absolute() else str(Path(glob.escape(str(base))) / rel)
            matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True) if Path(m).is_file())
            if not matches:
                raise ConfigError(f"input.frames: pattern {item!r} matches no file (looked in {p.parent})")
            paths.extend(matches)
        else:
            raise ConfigError(f"input.frames: {item!r} is not a file (looked for {p})")
    frames: dict[str, Frame] = {}
    for p in paths:
        name = frame_name(p)
        if name in frames and frames[name].path.resolve() != p.resolve():
            raise ConfigError(
                f"input.frames: {frames[name].path} and {p} would share the frame directory {name!r}; "
                "rename one"
            )
        frames.setdefault(name, Frame(name, p))
    return tuple(frames.values())


def synthetic_frames(cfg: SyntheticConfig, base: Path, output: Path) -> tuple[Frame, ...]:
    """The frames input.synthetic generates, each in its own cache directory.

    The cache directory is keyed by the renderer's version and every setting that changes the pixels,
    so editing one makes new frames instead of reusing stale ones; `frames` and `cache` only choose how
    many and where.
    """
    from tasks.synth import RENDER_VERSION

    root = Path(cfg.cache).expanduser() if cfg.cache else output / SYNTHETIC_DIR
    root = root if root.is_absolute() else base / root
    settings = config_hash(cfg.model_copy(update={"frames": 1, "seed": 0, "cache": None}))
    key = f"v{RENDER_VERSION}-{settings}"
    frames = []
    for k in range(cfg.frames):
        synth = cfg.frame(k)
        path = root.resolve() / key / f"seed{synth.seed}" / synth.image_name
        frames.append(Frame(frame_name(path), path, synth))
    return tuple(frames)


def resolve(scene: Scene, source: Path | None, output: Path | None = None) -> ResolvedScene:
    """Resolve name, output directory and frames. `source` is the scene file (None: paths vs cwd)."""
    # Absolute, so frame paths mean the same on workers whose working directory differs from ours.
    base = source.parent.absolute() if source else Path.cwd()
    name = scene.name or (source.stem if source else "scene")
    if not re.fullmatch(NAME_PATTERN, name):
        raise ConfigError(f"name: {name!r} (from the file name) is not a safe directory name; set name:")
    out = output if output is not None else Path(scene.output).expanduser()
    out = out if out.is_absolute() else base / out
    out = out.resolve()
    det = scene.detect
    if det.file is not None:  # files named in the scene are relative to it, like its frames
        paths = {
            k: str(base / Path(v).expanduser())
            for k, v in (("file", det.file), ("file_images", det.file_images))
            if v
        }
        scene = scene.model_copy(update={"detect": det.model_copy(update=paths)})
    # Model files too; builtin: names stay, and mmpose's CONFIG.py::CHECKPOINT.pth is two paths.
    for section, keys in (("detect", ("model",)), ("pose2d", ("model",)), ("regress", ("model", "body"))):
        cfg = getattr(scene, section)
        paths = {
            k: "::".join(str(base / Path(part).expanduser()) for part in v.split("::"))
            for k in keys
            if (v := getattr(cfg, k)) and not v.startswith("builtin:")
        }
        if paths:
            scene = scene.model_copy(update={section: cfg.model_copy(update=paths)})
    if scene.input.synthetic is not None:
        frames = synthetic_frames(scene.input.synthetic, base, out)
    else:
        assert scene.input.frames is not None  # InputConfig: exactly one of the two
        frames = resolve_frames(scene.input.frames, base)
    return ResolvedScene(scene, name, source, out, frames)


def config_hash(section: BaseModel) -> str:
    """Short stable hash of a config section: changes exactly when a setting changes."""
    text = json.dumps(section.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
