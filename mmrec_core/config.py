"""Where things live and which engine runs: one `Settings` object, from defaults, a file, then env.

Precedence (last wins): defaults < `<data_dir>/settings.json` < `MMREC_*` environment variables.
The resolved settings are recorded as provenance with every stored artifact.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA_DIR = REPO_ROOT / "sample_data"
SAMPLE_DATASET = "sample"


@dataclass
class Settings:
    data_dir: Path = field(
        default=Path("mmrec_data"),
        metadata={"help": "Folder holding the DuckDB file, the image store and model artifacts."},
    )
    engine: str = field(default="builtin", metadata={"help": "Model engine: 'builtin' (offline) or 'hf'."})
    llm: str = field(
        default="", metadata={"help": "Text LLM id or folder for the hf engine (builtin: SmolLM2-135M)."}
    )
    vlm: str = field(default="", metadata={"help": "Vision-language model id or folder (hf engine)."})
    quantization: str = field(default="none", metadata={"help": "none | 8bit | 4bit (bitsandbytes)."})
    device: str = field(default="auto", metadata={"help": "auto (CUDA if present) | cpu | cuda."})

    @property
    def db_path(self) -> Path:
        return self.data_dir / "mmrec.duckdb"

    @property
    def image_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    def provenance(self) -> dict:
        """The engine part of the settings, as stored next to every artifact."""
        return {k: v for k, v in asdict(self).items() if k != "data_dir"}


def load_settings(data_dir: str | Path | None = None) -> Settings:
    """Resolve settings: defaults, then `<data_dir>/settings.json`, then `MMREC_<FIELD>` env vars."""
    root = Path(data_dir or os.environ.get("MMREC_DATA_DIR") or Settings.data_dir)
    values: dict = {}
    settings_file = root / "settings.json"
    if settings_file.exists():
        try:
            values.update(json.loads(settings_file.read_text()))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{settings_file} is not valid JSON ({exc}); fix or delete it.") from exc
    for f in fields(Settings):
        env = os.environ.get(f"MMREC_{f.name.upper()}")
        if env is not None and f.name != "data_dir":
            values[f.name] = env
    known = {f.name for f in fields(Settings)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"Unknown setting(s) {sorted(unknown)} in {settings_file}; known: {sorted(known)}.")
    values["data_dir"] = root
    return Settings(**values)
