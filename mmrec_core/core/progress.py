"""The progress callback every long stage takes: `progress(done, total, message)`.

The CLI draws it as a tqdm bar, a background job writes it to the jobs table, tests record it.
`total` may be None while it is not known yet.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int | None, str], None]


def report(progress: Progress | None, done: int, total: int | None, message: str = "") -> None:
    """Call `progress` when one was given (stages accept None: nobody is watching)."""
    if progress is not None:
        progress(done, total, message)
