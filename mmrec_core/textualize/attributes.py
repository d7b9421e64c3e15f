"""`mmrec train-attributes`: the image attribute classifier, trained on a catalog's TRAINING articles only.

Articles are split once (`data.splits.item_split`, seeded 80/20, stored); the classifier never sees a test
article. Inside the training part a seeded fifth is held back to choose the regularisation C (by balanced
accuracy) and the calibration temperature (by log-loss); the test part is scored once, at the end.
Image features are cached per image (`<artifacts>/features/`), so a re-run only reads new images.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mmrec_core.data.splits import item_split
from mmrec_core.engines.attributes import FEATURES, AttributeHead, AttributeModel, image_features
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize.quality import balanced_accuracy

LABELS = {"product type": "product_type_name", "pattern": "graphical_appearance_name", "colour": "colour_group_name"}
C_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)
MIN_EXAMPLES = 5  # rarer classes cannot be learnt; their test articles count as misses


def cached_features(ws: Workspace, dataset: str, rows: list[dict], progress: Callable | None = None) -> np.ndarray:
    """FEATURES rows for `rows` (items with images), computed once per image and kept on disk."""
    path = ws.settings.artifacts_dir / "features" / f"{dataset}-{FEATURES}.npz"
    cache: dict[str, np.ndarray] = {}
    if path.is_file():
        with np.load(path) as data:
            cache = dict(zip(data["keys"].tolist(), data["rows"], strict=True))
    todo = [r for r in rows if r["image_sha256"] not in cache]
    for first in range(0, len(todo), 64):
        batch = todo[first : first + 64]
        found = image_features([ws.images.open(r["image_sha256"], r["ext"]) for r in batch])
        cache.update(zip([r["image_sha256"] for r in batch], found, strict=True))
        if (first // 64) % 8 == 7 or first + 64 >= len(todo):  # every 512 images: a crash loses little
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path.with_suffix(".partial.npz"), keys=np.array(list(cache)), rows=np.stack(list(cache.values())))
            path.with_suffix(".partial.npz").replace(path)
        if progress:
            progress(len(rows) - len(todo) + first + len(batch), len(rows), "image features")
    return np.stack([cache[r["image_sha256"]] for r in rows])


def _fit_head(x_fit, y_fit, x_valid, y_valid) -> tuple[AttributeHead, dict]:
    from scipy.optimize import minimize_scalar
    from sklearn.linear_model import LogisticRegression

    mean, scale = x_fit.mean(0), x_fit.std(0) + 1e-6
    z_fit, z_valid = (x_fit - mean) / scale, (x_valid - mean) / scale
    best = None
    for c in C_GRID:
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=500).fit(z_fit, y_fit)
        score = balanced_accuracy(list(y_valid), list(model.predict(z_valid)))
        if best is None or score > best[0]:
            best = (score, c, model)
    score, c, model = best
    logits = z_valid @ model.coef_.T + model.intercept_
    index = {k: i for i, k in enumerate(model.classes_)}
    known = np.array([y in index for y in y_valid])
    target = np.array([index.get(y, 0) for y in y_valid])

    def nll(t: float) -> float:
        s = logits[known] / t
        s = s - s.max(1, keepdims=True)
        return float(-(s[np.arange(known.sum()), target[known]] - np.log(np.exp(s).sum(1))).mean())

    temperature = float(minimize_scalar(nll, bounds=(0.05, 20), method="bounded").x)
    head = AttributeHead([str(k) for k in model.classes_], mean.astype(np.float32), scale.astype(np.float32),
                         model.coef_.astype(np.float32), model.intercept_.astype(np.float32), temperature)  # fmt: skip
    return head, {"C": c, "valid balanced accuracy": round(score, 4), "temperature": round(temperature, 3)}


def train_attribute_model(
    ws: Workspace, dataset: str, seed: int = 0, progress: Callable | None = None
) -> tuple[AttributeModel, pd.DataFrame]:
    """Train one head per attribute on the split's training articles; returns the model and its test figures."""
    split_id, parts = item_split(ws.store, dataset)
    items = ws.store.items_with_images(dataset).dropna(subset=["image_sha256"])
    attributes = [json.loads(a) if a else {} for a in items["attributes"]]
    missing = [c for c in LABELS.values() if not attributes or c not in attributes[0]]
    if missing:
        raise ValueError(f"Data set '{dataset}' has no {missing} attributes; train-attributes needs H&M articles.")
    rows = items.to_dict("records")
    start = time.perf_counter()
    features = cached_features(ws, dataset, rows, progress)
    part = np.array([parts.get(r["item_id"], "") for r in rows])
    rng = np.random.default_rng(seed)
    train = np.flatnonzero(part == "train")
    valid = rng.permutation(train)[: len(train) // 5]
    fit = np.setdiff1d(train, valid)
    test = np.flatnonzero(part == "test")

    heads, provenance, report = {}, {}, []
    for name, column in LABELS.items():
        y = np.array([str(a.get(column) or "") for a in attributes])
        counts = pd.Series(y[fit]).value_counts()
        learnable = np.isin(y, counts[counts >= MIN_EXAMPLES].index)
        head, info = _fit_head(features[fit[learnable[fit]]], y[fit[learnable[fit]]], features[valid], y[valid])
        heads[name], provenance[name] = head, {**info, "classes": len(head.classes)}
        p = head.probabilities(features[test])
        guess = [head.classes[i] for i in p.argmax(1)]
        truth = list(y[test])
        majority = pd.Series(y[train]).value_counts().index[0]
        confidence = p.max(1)
        hits = np.array([g == t for g, t in zip(guess, truth, strict=True)])
        report.append({
            "attribute": name, "test articles": len(test), "accuracy": float(hits.mean()),
            "balanced accuracy": balanced_accuracy(truth, guess),
            "majority accuracy": float(np.mean([t == majority for t in truth])),
            "majority balanced": balanced_accuracy(truth, [majority] * len(truth)),
            "mean confidence": float(confidence.mean()),  # calibrated: close to the accuracy
            "classes": len(head.classes),
        })  # fmt: skip
    provenance = {
        "features": FEATURES, "dataset": dataset, "split_id": split_id, "seed": seed,
        "fit articles": len(fit), "valid articles": len(valid), "test articles": len(test), "heads": provenance,
        "seconds": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    return AttributeModel(heads, provenance), pd.DataFrame(report)


def default_model_path(ws: Workspace, dataset: str) -> Path:
    return ws.settings.artifacts_dir / f"attributes-{dataset}.npz"
