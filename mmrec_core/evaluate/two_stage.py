"""Two-stage full-catalog recommendation, as LLM recommenders are deployed: retrieve, then re-rank.

The retriever (the trained model whose top K of the whole catalog holds the valid item for the most valid
users, or the one named) scores the whole catalog for every test user, the user's own history left out,
and keeps its top K. It is chosen on that full-catalog valid Recall@K, not on the sampled valid NDCG@10 the
models early-stop on, because the two disagree (MicroLens: BCE-trained SASRec is best on sampled valid and the
weakest whole-catalog retriever). The LLM re-ranks those K
pointwise on the shared prefix; the items below K keep the retriever's order. It never sees an item
outside the K, and never the test item unless the retriever put it there. Listwise (an adapter trained
with GRPO, `mmrec train grpo`) shows the K as a numbered list; the items the answer names go first in
its order and the rest keep the retriever's order below them, so an invalid answer (counted) leaves
the retriever's ranking as it was.

Metrics are full-catalog Recall and NDCG@10/20/50 over ALL test users for the retriever alone and
for retriever + LLM, plus the retriever's Recall@K (the re-ranker's ceiling). A user whose test item
is not in the top K keeps the retriever's rank whatever the LLM does, so the LLM is only run for
users where its answer can change a metric; the figures are exactly those of running it for everyone.
The run stores each user's full-catalog rank counts like every eval run, and its LLM scores go to
`llm_scores` (resumable, read back for the same prompts, candidates and provenance).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmrec_core.core.hashing import input_hash
from mmrec_core.core.progress import Progress
from mmrec_core.core.provenance import Provenance, code_version
from mmrec_core.data.metrics import full_rank_counts, metrics_from_counts, rank_counts
from mmrec_core.engines.protocol import Engine
from mmrec_core.evaluate.offline import FULL_KS, metric_rows
from mmrec_core.models.base import Recommender
from mmrec_core.models.data import TrainData, load_train_data
from mmrec_core.models.registry import MODELS, load_trained_models
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.llm import LLMRecommender, RecommendConfig
from mmrec_core.store.workspace import Workspace, default_protocol

TWO_STAGE_METHOD = "two-stage"
NAMES = (("Recall", "HR"), ("NDCG", "NDCG"))  # with one positive, HR@K is Recall@K


@dataclass
class TwoStageConfig:
    retriever: str = field(
        default="", metadata={"help": "Trained model that retrieves (default: best full-catalog valid Recall@K)."}
    )
    k: int = field(default=50, metadata={"flag": "top-k", "help": "Items the retriever hands to the LLM per user."})


@dataclass
class TwoStageResult:
    run_id: str
    table: pd.DataFrame  # rows: retriever, retriever + llm; columns Recall/NDCG@10/20/50, Recall@K, users
    per_user: pd.DataFrame  # user_id, retriever and final rank counts, in_top_k
    reranked: int  # users whose test item was in the top K (the LLM's answer counts)
    scored: int  # of those, scored by this call (the rest read back)
    retriever: str  # the model that retrieved
    invalid: int = 0  # listwise: re-ranked users whose answer was invalid (they keep the retriever's order)
    valid_recall: dict[str, float] = field(default_factory=dict)  # each trained model's: how the retriever was chosen


def strongest_retriever(
    ws: Workspace, dataset: str, protocol_id: str, method: str = "", k: int = 50, data: TrainData | None = None
) -> tuple[Recommender, str, str, dict[str, float]]:
    """(model, train run id, method, valid Recall@k of every trained model): `method` if given, else the
    trained model whose top k of the whole catalog holds the valid item for the most valid users."""
    methods = (method,) if method else tuple(MODELS)
    found = load_trained_models(ws, dataset, protocol_id, methods, method or "sasrec")
    data = data or load_train_data(ws.store, dataset, protocol_id)
    recall = {m: valid_recall(model, data, k) for model, _, m in found}
    model, run_id, chosen = max(found, key=lambda f: recall[f[2]])
    return model, run_id, chosen, recall


def valid_recall(model: Recommender, data: TrainData, k: int) -> float:
    """The share of valid users whose valid item is in the model's top k of the whole catalog (their training
    items left out): the re-ranker's ceiling, measured without the test part."""
    _, counts = retrieve(model, data, k, part="valid")
    hits = metrics_from_counts(counts["greater"], counts["ties"], counts["competitors"], ks=(k,))[f"HR@{k}"]
    return float(hits.mean())


def retrieve(
    model: Recommender, data: TrainData, k: int, batch: int = 1024, part: str = "test"
) -> tuple[np.ndarray, pd.DataFrame]:
    """Top-k item indices per user of `part` (history left out, best first) and the part's item's full-catalog
    rank counts under the retriever (greater, ties, competitors)."""
    cand = data.parts[part]
    tops, counts = [], []
    for first in range(0, len(cand.users), batch):
        rows = slice(first, first + batch)
        scores = model.score(cand.users[rows], cand.histories[rows]).astype(np.float64)
        history = [np.asarray(h, dtype=np.int64) for h in cand.histories[rows]]
        counts.append(np.stack(full_rank_counts(scores, cand.items[rows, 0], history), axis=1))
        for r, h in enumerate(history):
            scores[r, h] = -np.inf
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        tops.append(np.take_along_axis(top, order, axis=1))
    counts = np.concatenate(counts)
    return np.concatenate(tops), pd.DataFrame(counts, columns=["greater", "ties", "competitors"])


def evaluate_two_stage(
    ws: Workspace,
    engine: Engine,
    dataset: str,
    protocol_id: str | None = None,
    config: TwoStageConfig | None = None,
    rec_config: RecommendConfig | None = None,
    progress: Progress | None = None,
) -> TwoStageResult:
    """Retrieve the top K for every test user, re-rank them with the LLM (pointwise or listwise), record an
    eval run."""
    from mmrec_core.evaluate.llm import score_users

    config, rec_config = config or TwoStageConfig(), rec_config or RecommendConfig(explain_top=0)
    if config.k < 1:
        raise ValueError("k (retrieved items per user) must be at least 1.")
    protocol_id = default_protocol(ws, dataset, protocol_id)
    data = load_train_data(ws.store, dataset, protocol_id)
    found = strongest_retriever(ws, dataset, protocol_id, config.retriever, config.k, data)
    model, retriever_run, method, recall = found
    start = time.perf_counter()
    top, before = retrieve(model, data, config.k)
    cand = data.parts["test"]
    found = top == cand.items[:, [0]]  # where the test item sits in each user's top K, if it does
    slot, in_top = found.argmax(1), found.any(1)
    builder = ContextBuilder.for_config(ws, dataset, protocol_id, rec_config, data=data)
    recommender = LLMRecommender(engine, builder, rec_config)
    retrieved = {u: [str(data.item_ids[i]) for i in top[r]] for r, u in enumerate(cand.users)}
    users = [u for r, u in enumerate(cand.users) if in_top[r]]
    builder.prepare_similar(users)
    rows, scored = score_users(ws, recommender, users, retrieved.__getitem__, progress=progress)
    after = before.copy()
    for (r,), scores in zip(np.argwhere(in_top), rows["scores"], strict=True):
        scores = np.asarray(scores, dtype=np.float64)
        if rec_config.mode == "listwise":  # named items score K, K-1, ...; the fraction keeps the retriever's order
            scores = scores + np.arange(len(scores), 0, -1) / (len(scores) + 1)
        greater, ties = rank_counts(scores[[slot[r]]], np.delete(scores, slot[r])[None])
        after.loc[r, ["greater", "ties"]] = [int(greater[0]), int(ties[0])]  # within the K, by the LLM
    invalid = int((~rows["valid"].astype(bool)).sum())
    table = _table(before, after, in_top, config.k)
    prov = recommender.provenance()
    per_user = pd.concat([after, before.add_prefix("retriever_")], axis=1).assign(user_id=cand.users, in_top_k=in_top)
    params = {
        "retriever": method,
        "retriever_run": retriever_run,
        f"valid_Recall@{config.k}": recall,  # every trained model's: how the retriever was chosen
        "k": config.k,
        "users": len(cand.users),
        "reranked_users": len(users),
        "invalid_answers": invalid,
        "ranking": "full-catalog",
        "candidates_hash": input_hash([[u, retrieved[u]] for u in cand.users], length=16),  # what was re-ranked
        "seconds": round(time.perf_counter() - start, 2),
        "code_version": code_version(),
        **prov["params"],
    }
    run_id = ws.store.record_run(
        dataset,
        protocol_id,
        "eval",
        TWO_STAGE_METHOD,
        params,
        None,
        metric_rows(table.drop(columns="users")),
        per_user[["user_id", "greater", "ties", "competitors"]],
        Provenance(prov["engine"], prov["model"], prov["prompt_version"]),
    )
    return TwoStageResult(run_id, table, per_user, len(users), scored, method, invalid, recall)


def _table(before: pd.DataFrame, after: pd.DataFrame, in_top: np.ndarray, k: int) -> pd.DataFrame:
    """Full-catalog metrics of the retriever alone and with the LLM, one row each (index: the subset name)."""
    out = {}
    for name, counts in (("retriever", before), ("retriever+llm", after)):
        m = metrics_from_counts(counts["greater"], counts["ties"], counts["competitors"], ks=FULL_KS)
        row = {f"{metric}@{n}": m[f"{name_in}@{n}"].mean() for n in FULL_KS for metric, name_in in NAMES}
        out[name] = {**row, f"Recall@{k} (retriever)": float(in_top.mean()), "users": len(counts)}
    return pd.DataFrame(out).T
