"""The provenance record stored beside every artifact: which engine and model made it, how, when."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Provenance:
    """engine / model / prompt_version / params: the columns every artifact table shares."""

    engine: str
    model: str
    prompt_version: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, record: dict) -> Provenance:
        """From an engine's `provenance(task, ...)` dict."""
        version = record.get("prompt_version") or None  # engines say "" for a task without a prompt
        return cls(record["engine"], record["model"], version, dict(record.get("params") or {}))

    def columns(self) -> dict[str, Any]:
        """As table columns (params as JSON text)."""
        return {
            "engine": self.engine,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "params": json.dumps(self.params, default=str),
        }


def code_version() -> str:
    """The package version, plus the git commit when run from a checkout (recorded with every eval run)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        base = version("mmrec-studio")
    except PackageNotFoundError:
        base = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base}+{commit}" if commit else base
