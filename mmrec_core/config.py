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
SAMPLE_STATE_DIR = SAMPLE_DATA_DIR / "state"  # its precomputed results (`make sample-state`), when bundled

# Allowed values of the engine settings (checked when settings load, so a typo fails early and clearly).
CHOICES = {
    "engine": ("builtin", "hf"),
    "quantization": ("none", "8bit", "4bit", "int8"),
    "device": ("auto", "cpu", "cuda"),
    "dtype": ("auto", "float32", "bfloat16", "float16"),
    "describer": ("template", "filtered", "tuned", "tuned-free", "free"),
}


@dataclass
class Settings:
    data_dir: Path = field(
        default=Path("mmrec_data"),
        metadata={"help": "Folder holding the DuckDB file, the image store and model artifacts."},
    )
    engine: str = field(default="builtin", metadata={"help": "Model engine: 'builtin' (offline) or 'hf'."})
    llm: str = field(default="", metadata={"help": "Text LLM id or folder for the hf engine (builtin: SmolLM2-135M)."})
    vlm: str = field(default="", metadata={"help": "Vision-language model id or folder (hf engine)."})
    embedder: str = field(
        default="", metadata={"help": "Sentence-transformers id or folder (default: all-MiniLM-L6-v2 from its wheel)."}
    )
    adapter: str = field(default="", metadata={"help": "LoRA adapter folder (PEFT) attached to the text LLM."})
    quantization: str = field(
        default="none",
        metadata={"help": "none | 8bit | 4bit (bitsandbytes, CUDA) | int8 (dynamic int8 linear layers, CPU)."},
    )
    device: str = field(default="auto", metadata={"help": "auto (CUDA if present) | cpu | cuda."})
    dtype: str = field(
        default="auto", metadata={"help": "The LLM's weights: auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16."}
    )
    describer: str = field(
        default="template",
        metadata={
            "help": "How the builtin engine writes descriptions: template (from the fact sheet, never invents) | "
            "filtered (the template, then LLM sentences the grounding checker fully supports) | tuned (as "
            "filtered, the LLM with the describer adapter) | tuned-free (that adapter unchecked) | free (the LLM "
            "unchecked; for comparison)."
        },
    )
    describer_adapter: str = field(
        default="",
        metadata={
            "help": "LoRA adapter folder of the tuned describers, from `mmrec train describer hm` (not shipped: "
            "it did not beat the template on held-out articles, see README)."
        },
    )
    attribute_model: str = field(
        default="builtin",
        metadata={
            "help": "Image attribute classifier (product type, pattern, colour) for the builtin engine: builtin "
            "(shipped, trained on H&M; used when the catalog's product types are mostly its classes) | none | "
            "a file from `mmrec train-attributes`."
        },
    )
    score_batch_size: int = field(default=32, metadata={"help": "Candidates per batch when scoring yes/no."})
    reward_weights: str = field(
        default="1.0,1.0,0.5",
        metadata={"help": "Weights of R_info, R_recon, R_len in the keyword reward (comma separated)."},
    )
    keyword_budget: int = field(default=12, metadata={"help": "Keyword count at which R_len reaches -1."})
    profile_block: int = field(default=3, metadata={"help": "Items per block in recurrent profile summaries."})
    model_cache: Path | None = field(
        default=None, metadata={"help": "Folder for converted model copies (default: <data_dir>/models)."}
    )

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"Setting {name}={getattr(self, name)!r} is not one of: {', '.join(allowed)}.")
        self.reward_weight_values  # noqa: B018 (validate early)

    @property
    def reward_weight_values(self) -> tuple[float, float, float]:
        try:
            w_info, w_recon, w_len = (float(w) for w in str(self.reward_weights).split(","))
        except ValueError as exc:
            raise ValueError(
                f"Setting reward_weights={self.reward_weights!r} must be three numbers, e.g. '1.0,1.0,0.5'."
            ) from exc
        return w_info, w_recon, w_len

    @property
    def db_path(self) -> Path:
        return self.data_dir / "mmrec.duckdb"

    @property
    def image_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def model_cache_dir(self) -> Path:
        return Path(self.model_cache) if self.model_cache else self.data_dir / "models"

    def provenance(self) -> dict:
        """The engine part of the settings, as stored next to every artifact."""
        return {k: v for k, v in asdict(self).items() if k not in ("data_dir", "model_cache")}


@dataclass(frozen=True)
class ImageLimits:
    """What images the store accepts (uploads, ingested data sets) and how large it decodes them.

    Checked before anything is decoded or stored, so a hostile or oversized file costs a header read,
    not gigabytes of memory.
    """

    max_bytes: int = field(
        default=20 * 2**20, metadata={"help": "Largest image file accepted, in bytes (checked before it is read)."}
    )
    max_pixels: int = field(
        default=50_000_000,
        metadata={"help": "Largest image accepted, width x height in pixels (read from the header, before decoding)."},
    )
    decode_side: int = field(
        default=2048,
        metadata={"help": "Images are decoded with their longer side reduced to at most this (models use <= 1024)."},
    )
    max_upload_files: int = field(default=50, metadata={"help": "Most images one Catalog upload may add at once."})


IMAGE_LIMITS = ImageLimits()


ENGINE_FIELDS = (
    "engine", "llm", "vlm", "embedder", "adapter", "quantization", "device", "dtype", "describer", "describer_adapter",
    "attribute_model", "score_batch_size",
)  # fmt: skip


def _coerce(name: str, value):
    """Environment values are strings; turn them into the field's type with a message naming the setting."""
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if value is None or value == "":
        return None if "None" in str(kind) else value
    if "int" in str(kind):
        try:
            return int(value)
        except ValueError as exc:
            raise ValueError(f"Setting {name}={value!r} must be a whole number.") from exc
    if "Path" in str(kind):
        return Path(value)
    return value


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
    values = {k: _coerce(k, v) for k, v in values.items()}
    values["data_dir"] = root
    return Settings(**values)


def env_overrides() -> list[str]:
    """Engine settings fixed by MMREC_* environment variables (the app shows them as read-only)."""
    return [name for name in ENGINE_FIELDS if f"MMREC_{name.upper()}" in os.environ]


def save_settings(settings: Settings, **changes) -> Settings:
    """Write engine settings to `<data_dir>/settings.json` (atomically) and return the re-resolved settings."""
    bad = set(changes) - set(ENGINE_FIELDS)
    if bad:
        raise ValueError(f"Not an engine setting: {sorted(bad)}; engine settings are {list(ENGINE_FIELDS)}.")
    settings_file = settings.data_dir / "settings.json"
    current = json.loads(settings_file.read_text()) if settings_file.exists() else {}
    current.update(changes)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    tmp = settings_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    tmp.replace(settings_file)
    return load_settings(settings.data_dir)
