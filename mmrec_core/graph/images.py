"""Item image vectors: each item photo's EfficientNet-lite0 embedding (`engines.vision.image_vectors`), stored
once per image and embedder (embeddings kind `item:image`), beside the item text vectors of `graph.build`.

content-SASRec with `--content text+image` reads them: an item's content part then says what its photo looks
like as well as what its text says, which is all a cold item has. They need no LLM, so no engine: the
embedder ships in a package. An item without a photo has no vector; one whose photo cannot be decoded is
recorded and skipped, and the rest are stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmrec_core.core.hashing import input_hash
from mmrec_core.core.progress import Progress
from mmrec_core.core.provenance import Provenance
from mmrec_core.graph.build import embedding_rows
from mmrec_core.store.images import BadImageError
from mmrec_core.store.workspace import Workspace

ITEM_IMAGE_KIND = "item:image"  # embeddings table kind of the item photos
IMAGE_BATCH = 64  # photos per model call and per stored transaction
_PARAMS = {"input": "224 px square, padded with the border colour", "pooling": "global mean", "norm": "unit"}


@dataclass
class ImageVectorReport:
    embedded: int = 0
    reused: int = 0
    without_image: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (item_id, reason)

    def __str__(self) -> str:
        failed = f", {len(self.failed)} unreadable (skipped)" if self.failed else ""
        return (
            f"item image vectors: {self.embedded} embedded, {self.reused} reused, "
            f"{self.without_image} items without a photo{failed}"
        )


def image_provenance() -> Provenance:
    from mmrec_core.engines.vision import image_vector_model

    return Provenance("vision", image_vector_model(), None, _PARAMS)


def embed_item_images(ws: Workspace, dataset: str, progress: Progress | None = None) -> ImageVectorReport:
    """Store the vector of every item photo not yet embedded by this embedder; returns what it did."""
    from mmrec_core.engines.vision import image_vectors

    prov = image_provenance()
    items = ws.store.items_with_images(dataset)
    report = ImageVectorReport(without_image=int(items["image_sha256"].isna().sum()))
    items = items[items["image_sha256"].notna()]
    hashes = {r.item_id: input_hash([r.image_sha256, prov.model, _PARAMS]) for r in items.itertuples()}
    stored = ws.store.embeddings(dataset, ITEM_IMAGE_KIND)
    done = {k for k, h in zip(stored["key"], stored["input_hash"], strict=True) if hashes.get(k) == h}
    todo = items[~items["item_id"].isin(done)]
    report.reused = len(items) - len(todo)
    for first in range(0, len(todo), IMAGE_BATCH):
        batch, images = [], []
        for row in todo.iloc[first : first + IMAGE_BATCH].itertuples():
            try:
                images.append(ws.images.open(row.image_sha256, row.ext))
            except (BadImageError, OSError) as exc:  # one bad photo never ends the batch
                report.failed.append((row.item_id, f"{type(exc).__name__}: {exc}"))
                continue
            batch.append(row.item_id)
        if batch:
            rows = embedding_rows(dataset, ITEM_IMAGE_KIND, batch, image_vectors(images), prov, hashes)
            with ws.store.transaction() as tx:  # each batch on its own: an interrupted run keeps what it embedded
                ws.store.write_embeddings(tx, rows)
            report.embedded += len(batch)
        if progress:
            progress(min(first + IMAGE_BATCH, len(todo)), len(todo), "embedding item photos")
    return report


def item_image_matrix(ws: Workspace, dataset: str, item_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The stored image vectors of `item_ids` in that order, zeros where an item has none, and which have one."""
    stored = ws.store.embeddings(dataset, ITEM_IMAGE_KIND).set_index("key")["vector"]
    if stored.empty:
        raise KeyError(
            f"No item photo vectors are stored for {dataset}: `mmrec train content-sasrec {dataset}` embeds the "
            "photos first; a catalog without photos needs --content text."
        )
    dim = len(stored.iloc[0])
    has = np.array([i in stored.index for i in item_ids])
    matrix = np.zeros((len(item_ids), dim), dtype=np.float32)
    for row, item in enumerate(item_ids):
        if has[row]:
            matrix[row] = np.asarray(stored[item], dtype=np.float32)
    return matrix, has
