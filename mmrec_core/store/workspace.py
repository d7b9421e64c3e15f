"""A workspace = settings + the DuckDB store + the image store: what the app and the CLI open.

`default_protocol` is how every stage finds the evaluation protocol it works on when none is named:
it only reads (protocols are created by ingest and `mmrec protocol`, never as a side effect).
"""

from __future__ import annotations

from dataclasses import dataclass

from mmrec_core.config import Settings, load_settings
from mmrec_core.store.database import Store
from mmrec_core.store.images import ImageStore


@dataclass
class Workspace:
    settings: Settings
    store: Store
    images: ImageStore

    def close(self) -> None:
        self.store.close()


def open_workspace(
    settings: Settings | None = None, *, read_only: bool = False, origin: str | None = None
) -> Workspace:
    """Open the data folder's store and image store.

    `read_only`: for commands that only read (no write lock when the file allows it, see `Store`).
    `origin`: how the folder was chosen ('--data-dir', 'MMREC_DATA_DIR' or None), for the lock message.
    """
    settings = settings or load_settings()
    store = Store(settings.db_path, read_only=read_only, origin=origin)
    return Workspace(settings, store, ImageStore(settings.image_dir))


def default_protocol(ws: Workspace, dataset: str, protocol_id: str | None = None) -> str:
    """`protocol_id` when given (checked to belong to `dataset`), else the data set's default protocol.

    The default is the data set's oldest protocol: the one ingest created.
    Raises KeyError (naming what to run) for an unknown data set or one without any protocol.
    """
    return ws.store.default_protocol(dataset, protocol_id)
