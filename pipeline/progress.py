"""One progress bar per stage on a terminal; plain, greppable log lines otherwise (logs, CI, SLURM)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

log = logging.getLogger("pipeline")


class StageBar(Protocol):
    def advance(self, message: str) -> None: ...


class _LogBar:
    def __init__(self, stage: str, total: int) -> None:
        self.stage, self.total, self.done = stage, total, 0

    def advance(self, message: str) -> None:
        self.done += 1
        log.info("%s: %d/%d %s", self.stage, self.done, self.total, message)


class _RichBar:
    def __init__(self, progress: object, task: object) -> None:
        self.progress, self.task = progress, task

    def advance(self, message: str) -> None:
        self.progress.update(self.task, advance=1, status=message)  # type: ignore[attr-defined]


def interactive() -> bool:
    return sys.stderr.isatty()


@contextmanager
def stage_bar(stage: str, total: int) -> Iterator[StageBar]:
    """A bar for `total` units of `stage`."""
    if not interactive():
        log.info("%s: %d unit(s) to run", stage, total)
        yield _LogBar(stage, total)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"[bold]{stage:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        transient=False,
    ) as progress:
        yield _RichBar(progress, progress.add_task(stage, total=total, status=""))


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # distributed logs every worker start/stop and libvips every thread pool at INFO; keep the user's
    # log about the run.
    for name in ("distributed", "tornado", "asyncio", "pyvips"):
        logging.getLogger(name).setLevel(logging.WARNING)
