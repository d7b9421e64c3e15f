"""Content-addressed image files: each image is stored once as `<root>/<sha[:2]>/<sha256>.<ext>`.

Images are checked (fully decoded) before they are stored, so a truncated or non-image file is
reported by name instead of surfacing later in a model call.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
MAX_IMAGE_BYTES = 20 * 1024 * 1024


class BadImageError(ValueError):
    """A file that is not a readable image (or one we refuse to store)."""


@dataclass(frozen=True)
class ImageInfo:
    sha256: str
    ext: str
    width: int
    height: int
    n_bytes: int


def inspect_image(data: bytes, name: str) -> ImageInfo:
    """Decode `data` completely and describe it; `name` is only used in the error message."""
    if len(data) > MAX_IMAGE_BYTES:
        raise BadImageError(
            f"{name}: {len(data) / 1e6:.1f} MB is over the {MAX_IMAGE_BYTES // 2**20} MB image limit; "
            "downscale it first."
        )
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            img.load()  # a truncated file fails here, not at open()
            width, height = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadImageError(f"{name}: not a readable image ({exc}). Replace or remove the file.") from exc
    if fmt not in _EXT:
        raise BadImageError(f"{name}: image format {fmt} is not supported (use {', '.join(_EXT)}).")
    return ImageInfo(hashlib.sha256(data).hexdigest(), _EXT[fmt], width, height, len(data))


class ImageStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, sha256: str, ext: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.{ext}"

    def find(self, sha256: str) -> Path | None:
        """The stored file for a sha256, whatever its extension."""
        matches = list((self.root / sha256[:2]).glob(f"{sha256}.*"))
        return matches[0] if matches else None

    def open(self, sha256: str, ext: str) -> Image.Image:
        """The stored image, decoded now (so a broken file fails here) and converted to RGB."""
        path = self.path(sha256, ext)
        if not path.is_file():
            raise BadImageError(f"Image file {path} is missing from the image store; re-ingest the data set.")
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (OSError, Image.DecompressionBombError) as exc:
            raise BadImageError(f"Image file {path} cannot be read ({exc}); re-ingest or replace it.") from exc

    def put(self, data: bytes, info: ImageInfo) -> tuple[Path, bool]:
        """Write the bytes unless already stored; returns (path, newly_written). Writes are atomic."""
        target = self.path(info.sha256, info.ext)
        if target.exists():
            return target, False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
        return target, True
