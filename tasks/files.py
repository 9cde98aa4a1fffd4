"""Checksums of input and weight files, and loading model files."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks import InputError


def file_sha256(path: Path, block: int = 8 << 20) -> str:
    """Hex sha256 of a file, read in `block`-byte pieces (hashlib releases the GIL on large updates)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(block):
            h.update(piece)
    return h.hexdigest()


def checked_builtin(path: Path, sha256: str) -> Path:
    """`path` of a weight file shipped in the package, after checking it is the file we released."""
    if not path.is_file():
        raise InputError(f"shipped weight file missing: {path} (reinstall the package)")
    digest = file_sha256(path)
    if digest != sha256:
        raise InputError(f"{path} is damaged: sha256 {digest}, expected {sha256}")
    return path


def model_file(spec: str, builtins: dict[str, tuple[Path, str]], what: str) -> tuple[Path, str, str]:
    """(file, name, sha256) for a model spec: a shipped name of `builtins` (name -> (file, sha256),
    checked against its sha256) or the path of a user's file; `what` names the kind in errors."""
    if spec.startswith("builtin:"):
        if spec not in builtins:
            raise InputError(f"unknown built-in {what} {spec!r}; available: {', '.join(builtins)}")
        path, sha256 = builtins[spec]
        return checked_builtin(path, sha256), spec, sha256
    user = Path(spec).expanduser()
    if not user.is_file():
        raise InputError(f"{what} file not found: {user}")
    return user, str(user), file_sha256(user)


@contextlib.contextmanager
def native_stderr_to_log(logger: logging.Logger) -> Iterator[None]:
    """Route what native code writes to file descriptor 2 inside the block (e.g. LiteRT's "INFO:
    Created TensorFlow Lite XNNPACK delegate", printed below Python's logging) to `logger` at DEBUG,
    so it does not break progress lines."""
    import os
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                if line.strip():
                    logger.debug("%s", line)


def litert_interpreter(path: Path, what: str, threads: int = 1) -> Any:
    """A LiteRT (TFLite) interpreter for the model file, tensors allocated; one-line error otherwise."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        with native_stderr_to_log(logging.getLogger("litert")):
            interpreter = Interpreter(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise InputError(f"cannot load {what} model {path}: {str(e).splitlines()[0]}") from e
    return interpreter


def torch_state(path: Path, what: str) -> dict[str, Any]:
    """The state dict of a PyTorch checkpoint `{"model": state_dict}` (official YOLOX, ByteTrack and
    CLIFF layout) or a bare state dict, `module.` prefixes (DataParallel) stripped; tensors only are
    unpickled. `what` names the file in errors."""
    import torch

    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or non-checkpoint files
        raise InputError(f"cannot read {what} {path}: {str(e).splitlines()[0]}") from None
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: expected {{'model': state_dict}} or a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}
