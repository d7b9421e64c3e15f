"""Content-addressed image files: each image is stored once as `<root>/<sha[:2]>/<sha256>.<ext>`.

Images are checked before they are stored (size, then the pixel count from the header, then a full
decode), so a truncated, non-image or oversized file is reported by name instead of surfacing later in
a model call or as gigabytes of memory. Files are written to a `.part` temp file and renamed into
place, so a stored path always holds the whole image; nothing here deletes a stored image (see `gc`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from mmrec_core.config import IMAGE_LIMITS, ImageLimits

_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
_JPEG = ("JPEG", "MPO")  # an MPO (many camera photos) is a JPEG followed by more frames: its first frame is read
MAX_IMAGE_BYTES = IMAGE_LIMITS.max_bytes
PART_SUFFIX = ".part"
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)
UNREADABLE = "{name}: not a readable image ({reason}). Replace or remove the file."
STORED_UNREADABLE = "Image file {name} cannot be read ({reason}); re-ingest or replace it."


class BadImageError(ValueError):
    """A file that is not a readable image (or one we refuse to store)."""


@dataclass(frozen=True)
class ImageInfo:
    sha256: str
    ext: str
    width: int
    height: int
    n_bytes: int


def _too_big(name: str, n_bytes: int, limits: ImageLimits) -> BadImageError:
    return BadImageError(
        f"{name}: {n_bytes / 1e6:.1f} MB is over the {limits.max_bytes // 2**20} MB image limit; downscale it first."
    )


def _reason(exc: BaseException) -> str:
    """Pillow's message without the `<_io.BytesIO object at 0x...>` it puts in for in-memory files."""
    if isinstance(exc, UnidentifiedImageError):
        return "not a known image format"
    return re.sub(r"\s*<[^>]* object at 0x[0-9a-f]+>", "", str(exc)).strip() or type(exc).__name__


def read_image_file(path: str | Path, limits: ImageLimits = IMAGE_LIMITS) -> bytes:
    """A file's bytes for `inspect_image`; an oversized file is refused from its size alone, never read."""
    path = Path(path)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise _too_big(str(path), size, limits)
    with path.open("rb") as fh:
        data = fh.read(limits.max_bytes + 1)  # bounded, even if the file grows after the stat
    if len(data) > limits.max_bytes:
        raise _too_big(str(path), path.stat().st_size, limits)
    return data


def _open(fp: str | Path | IO[bytes], name: str, limits: ImageLimits, unreadable: str = UNREADABLE) -> Image.Image:
    """Open (header only) and check the format and the pixel count, before any pixel is decoded."""
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning: our own, lower limit is checked just below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp)
    except Image.DecompressionBombError as exc:
        raise BadImageError(
            f"{name}: over the {limits.max_pixels / 1e6:.0f} megapixel image limit ({_reason(exc).rstrip('.')}); "
            "downscale it first."
        ) from exc
    except _DECODE_ERRORS as exc:
        raise BadImageError(unreadable.format(name=name, reason=_reason(exc))) from exc
    width, height = img.size
    if img.format not in _EXT:
        img.close()
        supported = ", ".join(sorted({f for f in _EXT if f != "MPO"}))
        raise BadImageError(f"{name}: image format {img.format} is not supported (use {supported}).")
    if width * height > limits.max_pixels:
        img.close()
        raise BadImageError(
            f"{name}: {width}x{height} pixels ({width * height / 1e6:.0f} megapixels) is over the "
            f"{limits.max_pixels / 1e6:.0f} megapixel image limit; downscale it first."
        )
    return img


def _decode(img: Image.Image, side: int) -> Image.Image:
    """Decode an opened image at most `side` pixels on its longer side, upright, as 8-bit RGB.

    JPEGs are scaled by the decoder itself (`thumbnail` uses `draft`), other formats are reduced right
    after decoding, so a large photo never exists in memory at full size as RGB. The whole file is still
    read, so a truncated one fails here.
    """
    img.thumbnail((side, side), reducing_gap=2.0)  # no-op for a small image
    img.load()
    upright = ImageOps.exif_transpose(img)  # phone photos store "rotate by 90" in EXIF, not in the pixels
    if upright.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale (PNG): convert("RGB") clips every value above 255 to white; keep the top 8 bits
        values = np.asarray(upright)
        if upright.mode != "I" or values.max(initial=0) > 255:
            values = np.clip(values, 0, 65535).astype(np.uint32) >> 8
        upright = Image.fromarray(values.astype(np.uint8), "L")
    return upright.convert("RGB")


def inspect_image(data: bytes, name: str, limits: ImageLimits = IMAGE_LIMITS) -> ImageInfo:
    """Check and describe `data` (decoded completely, at reduced size); `name` is only used in error messages.

    Width and height are the upright image's (an EXIF-rotated photo reports its rotated size).
    """
    if len(data) > limits.max_bytes:
        raise _too_big(name, len(data), limits)
    with _open(io.BytesIO(data), name, limits) as img:
        fmt = img.format
        width, height = img.size
        try:
            _decode(img, limits.decode_side)
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
        except _DECODE_ERRORS as exc:
            raise BadImageError(UNREADABLE.format(name=name, reason=_reason(exc))) from exc
    if orientation in _ROTATED:
        width, height = height, width
    return ImageInfo(hashlib.sha256(data).hexdigest(), _EXT[fmt], width, height, len(data))


def decode_image_file(
    path: str | Path | IO[bytes],
    side: int | None = None,
    limits: ImageLimits = IMAGE_LIMITS,
    unreadable: str = UNREADABLE,
    name: str | None = None,
) -> Image.Image:
    """An image file (or open bytes, named by `name`) as upright 8-bit RGB at most `side` (default
    `limits.decode_side`) pixels on its longer side; refused (BadImageError naming the file) over the pixel
    limit, before anything is decoded."""
    name = name or str(path)
    with _open(path, name, limits, unreadable) as image:
        try:
            return _decode(image, side or limits.decode_side)
        except _DECODE_ERRORS as exc:
            raise BadImageError(unreadable.format(name=name, reason=_reason(exc))) from exc


def decode_stored_bytes(data: bytes, name: str, limits: ImageLimits = IMAGE_LIMITS) -> Image.Image:
    """A stored image's bytes (read elsewhere: a batch job's shard) decoded as `ImageStore.open` decodes its file."""
    return decode_image_file(io.BytesIO(data), limits=limits, unreadable=STORED_UNREADABLE, name=name)


def thumbnail_jpeg(path: str | Path, side: int, quality: int = 90) -> bytes:
    """A stored image as JPEG bytes at most `side` pixels on its longer side (decoded reduced, so a large file
    costs a header read and a reduced decode, not its full size)."""
    buffer = io.BytesIO()
    decode_image_file(path, side).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


_WRITE_LOCKS: dict[Path, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


class ImageStore:
    def __init__(self, root: str | Path, limits: ImageLimits = IMAGE_LIMITS):
        self.root = Path(root)
        self.limits = limits

    def path(self, sha256: str, ext: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.{ext}"

    def find(self, sha256: str) -> Path | None:
        """The stored file for a sha256, whatever its extension."""
        matches = [p for p in (self.root / sha256[:2]).glob(f"{sha256}.*") if not p.name.endswith(PART_SUFFIX)]
        return matches[0] if matches else None

    def write_lock(self) -> threading.Lock:
        """One lock per image folder in this process: held while rows are committed or files cleaned up, so a
        clean-up's "does a committed row reference this file?" cannot interleave with another upload's commit."""
        key = self.root.resolve()
        with _WRITE_LOCKS_GUARD:
            return _WRITE_LOCKS.setdefault(key, threading.Lock())

    def stored_path(self, sha256: str, ext: str) -> Path:
        """The stored file's path; BadImageError when it is missing."""
        path = self.path(sha256, ext)
        if not path.is_file():
            raise BadImageError(f"Image file {path} is missing from the image store; re-ingest the data set.")
        return path

    def open(self, sha256: str, ext: str) -> Image.Image:
        """The stored image as upright 8-bit RGB, decoded now (so a broken file fails here) and reduced to
        at most `limits.decode_side` pixels on its longer side."""
        path = self.stored_path(sha256, ext)
        return decode_image_file(path, limits=self.limits, unreadable=STORED_UNREADABLE)

    def put(self, data: bytes, info: ImageInfo) -> tuple[Path, bool]:
        """Write the bytes unless already stored; returns (path, newly_written).

        The bytes go to a `.part` temp file that is then linked into place: the target either does not exist
        or holds the whole image, and when two sessions store the same image at once exactly one of them
        reports it as newly written. On any error only this call's own temp file is removed.
        """
        if hashlib.sha256(data).hexdigest() != info.sha256:  # the name must always be the content's hash
            raise BadImageError(
                f"The bytes to store as image {info.sha256[:12]} do not match its checksum (the file changed "
                "after it was checked); run again."
            )
        target = self.path(info.sha256, info.ext)
        if target.is_file():
            _touch(target)
            return target, False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{info.sha256}.", suffix=PART_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                os.link(tmp, target)  # unlike a rename, fails when another writer got there first
                return target, True
            except FileExistsError:
                _touch(target)
                return target, False
            except OSError:  # a file system without hard links: rename (same bytes, so a race is harmless)
                os.replace(tmp, target)
                return target, True
        finally:
            Path(tmp).unlink(missing_ok=True)

    def discard(self, paths: list[Path], referenced: set[tuple[str, str]]) -> list[Path]:
        """Delete those of `paths` (image files this process just wrote) that no committed row references.

        `referenced` holds the (sha256, ext) of the committed image rows among them; call it with
        `write_lock()` held, so no other upload commits a row for one of these files meanwhile.
        Returns the deleted paths.
        """
        removed = []
        for path in paths:
            sha256, _, ext = path.name.partition(".")
            if (sha256, ext) not in referenced:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed


def _touch(path: Path) -> None:
    # an upload about to reference an already stored (maybe orphaned) file: a fresh mtime keeps `gc` away from it
    try:
        os.utime(path)
    except OSError:
        pass
