"""One progress bar per stage on a terminal, counting what the stage works through (tiles, boxes,
people), with an ETA; plain, greppable log lines per frame otherwise (logs, CI, SLURM)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

log = logging.getLogger("pipeline")


class StageBar(Protocol):
    def advance(self, message: str) -> None:
        """A frame finished the stage (or failed in it): `message` says how."""

    def add(self, n: int) -> None:
        """n more work units (tiles, boxes, people) became known."""

    def work(self, n: int) -> None:
        """n work units were done."""


class _LogBar:
    def __init__(self, stage: str, total: int) -> None:
        self.stage, self.total, self.done = stage, total, 0

    def advance(self, message: str) -> None:
        self.done += 1
        log.info("%s: %d/%d %s", self.stage, self.done, self.total, message)

    def add(self, n: int) -> None:
        pass  # a log has one line per frame, not per batch

    def work(self, n: int) -> None:
        pass


class _RichBar:
    """Counts frames, or the stage's work units when it has them (the total grows as frames are
    planned); work() may be called from Dask's callback thread: rich's Progress takes a lock."""

    def __init__(self, progress: object, task: object, frames: bool) -> None:
        self.progress, self.task, self.frames = progress, task, frames

    def advance(self, message: str) -> None:
        self.progress.update(self.task, advance=1 if self.frames else 0, status=message)  # type: ignore[attr-defined]

    def add(self, n: int) -> None:
        task = self.progress.tasks[self.task]  # type: ignore[attr-defined,index]
        self.progress.update(self.task, total=(task.total or 0) + n)  # type: ignore[attr-defined]

    def work(self, n: int) -> None:
        self.progress.update(self.task, advance=n)  # type: ignore[attr-defined]


def interactive() -> bool:
    return sys.stderr.isatty()


@contextmanager
def stage_bar(stage: str, total: int, unit: str = "frames") -> Iterator[StageBar]:
    """A bar for `total` frames of `stage`, counting `unit` (frames, or work units the stage adds as
    it plans them: tiles, boxes, people)."""
    if not interactive():
        log.info("%s: %d unit(s) to run", stage, total)
        yield _LogBar(stage, total)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(f"[bold]{stage:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        transient=False,
    ) as progress:
        frames = unit == "frames"
        task = progress.add_task(stage, total=total if frames else None, status="")
        yield _RichBar(progress, task, frames)


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
