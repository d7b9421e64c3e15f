"""Progress on the command line: a tqdm bar (rate and ETA) on stderr for any stage's `progress` callback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from mmrec_core.core.progress import Progress

T = TypeVar("T")


def tqdm_progress(unit: str) -> tuple[Progress, Callable[[], None]]:
    """A progress callback drawing a tqdm bar; returns (callback, close)."""
    from tqdm import tqdm

    bar = tqdm(unit=unit, dynamic_ncols=True)

    def progress(done: int, total: int | None, message: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return progress, bar.close


@contextmanager
def bar_per_run(unit: str) -> Iterator[Callable[[str], Progress]]:
    """For a sequence of runs: `progress_for(name)` closes the previous run's bar, prints the name and opens a new
    bar; every bar is closed on the way out, also after an error."""
    closes: list[Callable[[], None]] = []

    def progress_for(name: str) -> Progress:
        if closes:
            closes[-1]()  # the previous run is done
        print(f"{name} ...", flush=True)
        progress, close = tqdm_progress(unit)
        closes.append(close)
        return progress

    try:
        yield progress_for
    finally:
        for close in closes:
            close()


def with_progress(unit: str, work: Callable[[Progress], T]) -> T:
    """Run `work(progress)` with a tqdm bar; returns what it returns."""
    progress, close = tqdm_progress(unit)
    try:
        return work(progress)
    finally:
        close()
