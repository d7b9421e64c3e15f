"""One input hash for every stored artifact: a re-run skips work whose inputs and provenance are unchanged."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def input_hash(*parts: Any, length: int | None = None) -> str:
    """sha256 of the parts as canonical JSON (sorted keys; non-JSON values by their str), hex.

    One string part is hashed as it is (it is already canonical text). `length` cuts the hex digest
    (ids such as graph or run-folder keys); stored input hashes keep all 64 characters.
    """
    payload = parts[0] if len(parts) == 1 else list(parts)
    text = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return digest[:length] if length else digest
