"""A workspace = settings + the DuckDB store + the image store: what the app and the CLI open."""

from __future__ import annotations

from dataclasses import dataclass

from .config import SAMPLE_DATA_DIR, SAMPLE_DATASET, Settings, load_settings
from .images import ImageStore
from .ingest import IngestReport, ingest
from .store import Store


@dataclass
class Workspace:
    settings: Settings
    store: Store
    images: ImageStore

    def close(self) -> None:
        self.store.close()


def open_workspace(settings: Settings | None = None) -> Workspace:
    settings = settings or load_settings()
    return Workspace(settings, Store(settings.db_path), ImageStore(settings.image_dir))


def ensure_sample_dataset(ws: Workspace) -> IngestReport | None:
    """Load the bundled H&M sample as data set 'sample' unless it is already there."""
    if ws.store.dataset_info(SAMPLE_DATASET) is not None:
        return None
    return ingest(ws.store, ws.images, "hm", SAMPLE_DATA_DIR, name=SAMPLE_DATASET)
