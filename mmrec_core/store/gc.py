"""Image files nothing refers to: what a killed ingest or upload leaves in the image folder.

Image files are written before their rows are committed (so a committed row always has its file); a
process killed in between leaves a file no row references, or a `.part` temp file. `collect_garbage`
deletes both. Files younger than `min_age_s` are kept: an ingest or upload in flight may be about to
commit the row for one (writers refresh the mtime of a stored file they reuse, for the same reason).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from mmrec_core.store.images import PART_SUFFIX
from mmrec_core.store.workspace import Workspace

DEFAULT_MIN_AGE_S = 600.0  # far longer than writing one image and committing its row
_IMAGE_NAME = re.compile(r"([0-9a-f]{64})\.([a-z0-9]+)")


@dataclass
class GcReport:
    """What `collect_garbage` removed (or, with `dry_run`, would remove)."""

    orphans: list[Path] = field(default_factory=list)  # image files no committed image row references
    parts: list[Path] = field(default_factory=list)  # stale `.part` temp files of interrupted writes
    n_bytes: int = 0
    kept_recent: int = 0  # unreferenced or temp files younger than min_age_s (a write may be in flight)
    dry_run: bool = False

    @property
    def removed(self) -> list[Path]:
        return self.orphans + self.parts

    def __str__(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        text = (
            f"{verb} {len(self.orphans)} unreferenced image file(s) and {len(self.parts)} temp file(s), "
            f"{self.n_bytes / 1e6:.1f} MB"
        )
        if self.kept_recent:
            text += f"; kept {self.kept_recent} recent one(s) (a write may be in flight: run again later)"
        return text


def collect_garbage(ws: Workspace, *, dry_run: bool = False, min_age_s: float = DEFAULT_MIN_AGE_S) -> GcReport:
    """Delete image files that no committed image row references and stale `.part` files; returns what went.

    Only names the image store writes are considered (`<sha[:2]>/<sha256>.<ext>`, `*.part`): any other
    file in the folder is left alone. `dry_run` lists without deleting.
    """
    report = GcReport(dry_run=dry_run)
    root = ws.images.root
    if not root.is_dir():
        return report
    # the lock: an upload in this process cannot commit a row for a file between the check and the delete
    with ws.images.write_lock():
        referenced = ws.store.image_keys()
        now = time.time()
        for path in sorted(root.glob("*/*")):
            if not path.is_file() or path.is_symlink():
                continue
            if path.name.endswith(PART_SUFFIX):
                found = report.parts
            elif (m := _IMAGE_NAME.fullmatch(path.name)) and path.parent.name == m[1][:2]:
                if (m[1], m[2]) in referenced:
                    continue
                found = report.orphans
            else:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # renamed into place or removed meanwhile
                continue
            if now - stat.st_mtime < min_age_s:
                report.kept_recent += 1
                continue
            if not dry_run:
                path.unlink(missing_ok=True)
            found.append(path)
            report.n_bytes += stat.st_size
    return report
