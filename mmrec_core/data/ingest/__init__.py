"""Importers: `ingest(store, image_store, format, path)` loads a data set in one transaction.

Each format module turns its layout into a `RawDataset`; `common.write_raw_dataset` does the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmrec_core.config import SAMPLE_DATA_DIR, SAMPLE_DATASET, SAMPLE_STATE_DIR
from mmrec_core.data.ingest.common import IngestError, IngestReport, RawDataset, write_raw_dataset
from mmrec_core.data.ingest.generic import read_generic
from mmrec_core.data.ingest.hm import read_hm
from mmrec_core.data.ingest.microlens import read_microlens
from mmrec_core.data.ingest.movielens import read_movielens
from mmrec_core.data.ingest.recbole import read_recbole
from mmrec_core.data.splits import ProtocolConfig
from mmrec_core.store.database import Store
from mmrec_core.store.images import ImageStore
from mmrec_core.store.workspace import Workspace

READERS: dict[str, Callable[[Path], RawDataset]] = {
    "hm": read_hm,
    "microlens": read_microlens,
    "movielens": read_movielens,
    "recbole": read_recbole,
    "generic": read_generic,
}

__all__ = ["READERS", "IngestError", "IngestReport", "ingest"]


def ingest(
    store: Store,
    image_store: ImageStore,
    fmt: str,
    path: str | Path,
    *,
    name: str | None = None,
    replace: bool = False,
    n_negatives: int = ProtocolConfig.n_negatives,
    seed: int = ProtocolConfig.seed,
    min_history: int = ProtocolConfig.min_history,
) -> IngestReport:
    """Load the data set at `path` (a folder, or for some formats a file) under `name`.

    Re-ingesting identical data changes nothing. Different data under an existing name needs
    `replace=True`. The default leave-one-out protocol (negatives drawn once) is created with it.
    """
    if fmt not in READERS:
        raise ValueError(f"Unknown format '{fmt}'; choose one of: {', '.join(READERS)}.")
    path = Path(path).resolve()  # provenance: where the data came from, unambiguously
    if not path.exists():
        raise IngestError(path, "no such file or folder.")
    raw = READERS[fmt](path)
    dataset = name or default_name(fmt, path)
    protocol_args = {"n_negatives": n_negatives, "seed": seed, "min_history": min_history}
    return write_raw_dataset(store, image_store, raw, dataset, replace=replace, protocol_args=protocol_args)


def default_name(fmt: str, path: Path) -> str:
    """hm / microlens / movielens keep the format name; generic and recbole use the folder or file stem."""
    if fmt in ("generic", "recbole"):
        return (path.stem if path.is_file() else path.resolve().name).lower()
    return fmt


def ensure_sample_dataset(ws: Workspace, with_results: bool = True) -> str | None:
    """Load the bundled H&M sample as data set 'sample' unless it is already there (None then).

    With `with_results`, the precomputed results bundled in `sample_data/state` (`make sample-state`: the
    real pipeline's output, exported) are imported too, so a first start shows every page filled. If they
    cannot be imported the sample stays loaded without them and the returned text says why.
    """
    if ws.store.dataset_info(SAMPLE_DATASET) is not None:
        return None
    report = str(ingest(ws.store, ws.images, "hm", SAMPLE_DATA_DIR, name=SAMPLE_DATASET))
    if not with_results or not (SAMPLE_STATE_DIR / "manifest.json").is_file():
        return report
    from mmrec_core.store.exchange import ExportError, import_dataset

    try:
        import_dataset(ws.store, ws.images, SAMPLE_STATE_DIR, ws.settings.data_dir / "runs")
    except ExportError as exc:
        return f"{report}; the precomputed results were not loaded: {exc}"
    return f"{report}; precomputed results imported from {SAMPLE_STATE_DIR}"
