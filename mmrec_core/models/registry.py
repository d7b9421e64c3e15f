"""The trainable recommenders by name, and how one is trained on a protocol and loaded back.

`train_model` fits a model on the protocol's training sequences (valid picks the epoch), saves it
under `<data folder>/runs/<method>-<id>/` and records a 'train' run; `load_trained` returns the
newest one. The item-graph model also gets the stored item graph, text vectors and profile vectors.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from mmrec_core.core.progress import Progress
from mmrec_core.graph.build import ITEM_TEXT_KIND, latest_graph_id, load_graph
from mmrec_core.graph.images import embed_item_images, item_image_matrix
from mmrec_core.models.base import Recommender
from mmrec_core.models.bprmf import BPRMF, BPRMFConfig
from mmrec_core.models.data import TrainData, load_train_data
from mmrec_core.models.lightgcn import ItemGraphConfig, ItemGraphLightGCN, NoGraphConfig
from mmrec_core.models.popularity import Popularity, PopularityConfig
from mmrec_core.models.repeat import Repeat, RepeatConfig
from mmrec_core.models.sasrec import ContentSASRec, ContentSASRecConfig, SASRec, SASRecConfig
from mmrec_core.store.workspace import Workspace, default_protocol

MODELS: dict[str, tuple[type[Recommender], type]] = {
    "popularity": (Popularity, PopularityConfig),
    "repeat": (Repeat, RepeatConfig),
    "bprmf": (BPRMF, BPRMFConfig),
    "sasrec": (SASRec, SASRecConfig),
    "content-sasrec": (ContentSASRec, ContentSASRecConfig),
    "lightgcn": (ItemGraphLightGCN, ItemGraphConfig),
    "lightgcn-no-graph": (ItemGraphLightGCN, NoGraphConfig),  # an ablation: trained on request, not by the pipeline
}
SEQUENTIAL = ("sasrec", "content-sasrec")  # models whose user states find similar customers
TRAINING_FREE = ("popularity", "repeat")  # fitted from item counts in a second: evaluated without a train run


def _model_class(method: str) -> tuple[type[Recommender], type]:
    if method not in MODELS:
        raise ValueError(f"Unknown model '{method}'; choose one of {', '.join(MODELS)}.")
    return MODELS[method]


def attach_item_vectors(ws: Workspace, data: TrainData, content: str = "text") -> TrainData:
    """Add the stored item text vectors (written by `mmrec graph`), in catalog order; with `content`
    "text+image", each followed by its photo's stored vector (`graph.images.embed_item_images`)."""
    vectors = ws.store.embeddings(data.dataset, ITEM_TEXT_KIND).set_index("key")["vector"]
    missing = set(data.item_ids) - set(vectors.index)
    if missing:
        raise KeyError(f"{len(missing)} items have no text embedding; build them with `mmrec graph {data.dataset}`.")
    data.item_features = np.stack([np.asarray(vectors[i], dtype=np.float32) for i in data.item_ids])
    if content == "text+image":
        images, _ = item_image_matrix(ws, data.dataset, list(data.item_ids))
        data.item_features = np.concatenate([data.item_features, images], axis=1)
    elif content != "text":
        raise ValueError(f"Unknown content '{content}'; use text or text+image.")
    return data


def attach_graph_inputs(ws: Workspace, data: TrainData) -> TrainData:
    """Add the newest item graph of the protocol, the item text vectors and the profile embeddings."""
    graph_id = latest_graph_id(ws.store, data.dataset, data.protocol_id)
    if graph_id is None:
        raise KeyError(f"No item graph for {data.protocol_id}; build one with `mmrec graph {data.dataset}`.")
    index = data.index()
    edges = load_graph(ws.store, data.dataset, graph_id)
    data.edges = (
        pd.DataFrame({"src": edges["src"].map(index), "dst": edges["dst"].map(index), "weight": edges["weight"]})
        .dropna()
        .astype({"src": int, "dst": int})
    )
    attach_item_vectors(ws, data)
    profiles = ws.store.embeddings(data.dataset, f"profile:{data.protocol_id}")
    data.user_features = {
        u: np.asarray(v, dtype=np.float32) for u, v in zip(profiles["key"], profiles["vector"], strict=True)
    }
    return data


def train_model(
    ws: Workspace,
    dataset: str,
    method: str,
    protocol_id: str | None = None,
    config=None,
    progress: Progress | None = None,
    data: TrainData | None = None,
) -> str:
    """Fit `method` on the protocol's training data, save it, record a 'train' run; returns the run id."""
    cls, config_type = _model_class(method)
    protocol_id = default_protocol(ws, dataset, protocol_id)
    config = config or config_type()
    data = data or load_train_data(ws.store, dataset, protocol_id)
    used: dict = {}  # what the run used where it differs from its settings
    if cls is ItemGraphLightGCN:
        data = attach_graph_inputs(ws, data)
    elif method == "content-sasrec":
        photos = ws.store.items_with_images(dataset)["image_sha256"].notna().any()
        used["content_used"] = config.content if photos else "text"  # a catalog without photos (MicroLens)
        if used["content_used"] == "text+image":  # photos not yet embedded are embedded and stored now
            used["photos_unreadable"] = [i for i, _ in embed_item_images(ws, dataset, progress).failed]
        data = attach_item_vectors(ws, data, used["content_used"])
    start = time.perf_counter()
    model = cls(config)
    model.fit(data, progress)
    folder = ws.settings.data_dir / "runs" / f"{method}-{uuid.uuid4().hex[:10]}"
    model.save(folder)
    params = {
        **dataclasses.asdict(config),
        "train_seconds": round(time.perf_counter() - start, 2),
        "epochs_run": len(model.log),
        "train_users": len(data.sequences),
        **used,
    }
    if data.user_features is not None:  # the item-graph model: how many users had an LLM profile
        params["users_with_profile"] = sum(u in data.user_features for u in data.sequences)
    return ws.store.record_run(dataset, protocol_id, "train", method, params, folder)


def load_trained(ws: Workspace, dataset: str, method: str, protocol_id: str) -> tuple[Recommender, str]:
    """The newest model of `method` trained on this protocol, and its run id."""
    cls, config_type = _model_class(method)
    run = ws.store.latest_train_run(dataset, protocol_id, method)
    if run is None:
        raise KeyError(f"No trained {method} for {protocol_id}; run `mmrec train {method} {dataset}` first.")
    return cls.load(Path(run["artifact_path"]), config_type), run["run_id"]


def best_valid_ndcg(model: Recommender) -> float:
    """The best epoch's valid NDCG@10 (the epoch the model kept): how models are compared without the test part."""
    return max((row.get("valid_NDCG@10", -1.0) for row in model.log), default=-1.0)


def load_best_on_valid(
    ws: Workspace, dataset: str, protocol_id: str, methods: tuple[str, ...], suggest: str
) -> tuple[Recommender, str, str]:
    """Of `methods`, the trained one with the best valid NDCG@10: (model, run id, method). `suggest` is the
    model the error names when none is trained."""
    found = load_trained_models(ws, dataset, protocol_id, methods, suggest)
    return max(found, key=lambda f: best_valid_ndcg(f[0]))


def load_trained_models(
    ws: Workspace, dataset: str, protocol_id: str, methods: tuple[str, ...], suggest: str
) -> list[tuple[Recommender, str, str]]:
    """The newest trained model of each of `methods` that has one: (model, run id, method); none trained: a
    KeyError naming `suggest`."""
    found = []
    for method in methods:
        try:
            model, run_id = load_trained(ws, dataset, method, protocol_id)
        except KeyError:
            continue
        found.append((model, run_id, method))
    if not found:
        raise KeyError(f"No trained {suggest} for {protocol_id}; run `mmrec train {suggest} {dataset}` first.")
    return found


def load_strongest_sequential(ws: Workspace, dataset: str, protocol_id: str) -> tuple[Recommender, str, str]:
    """The trained sequential model (SASRec or content-SASRec) with the best valid NDCG@10: (model, run id,
    method). Similar customers and every LLM context come from it."""
    return load_best_on_valid(ws, dataset, protocol_id, SEQUENTIAL, "sasrec")
