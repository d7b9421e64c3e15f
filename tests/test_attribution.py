"""Counterfactual attribution: a piece that alone decides the score gets the whole change; the shared-prefix
scores equal each ablated prompt scored alone; only what the prompt showed is left out; stored with provenance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from mmrec_core.explain.attribution import Attributor, context_pieces, describe, rank_of
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.customer import stored_candidates
from mmrec_core.recommend.llm import LLMRecommender, RecommendConfig
from mmrec_core.store.workspace import Workspace, default_protocol
from mmrec_core.textualize.texts import split_keywords
from tests.fakes import ScriptedEngine


class DecidedBy(ScriptedEngine):
    """Scores 0.9 when `phrase` is in the shared context, else 0.1: one piece alone decides every score."""

    phrase = ""

    def score_yes_no(self, prefix: str, suffixes: Sequence[str], system: str | None = None) -> np.ndarray:
        return np.full(len(suffixes), 0.9 if self.phrase in prefix else 0.1, dtype=np.float32)


def setup(ws: Workspace, engine, config: RecommendConfig | None = None) -> tuple[ContextBuilder, LLMRecommender, str]:
    pid = default_protocol(ws, "sample")
    config = config or RecommendConfig()
    builder = ContextBuilder(ws, "sample", pid, "test", config.n_history, config.n_similar)
    user = next(u for u in builder.data.parts["test"].users if builder.profiles.get(u))  # one with a profile
    return builder, LLMRecommender(engine, builder, config), user


def test_a_piece_that_alone_decides_the_score_gets_the_whole_change(rec_ws: Workspace) -> None:
    engine = DecidedBy(rec_ws.settings)
    builder, recommender, user = setup(rec_ws, engine)
    ctx = builder.context(user)
    newest = ctx.history[-1]
    engine.phrase = newest.text()  # only the newest purchase's line moves the score
    candidates = stored_candidates(builder, user)
    result = Attributor(recommender).attribute(user, candidates)
    assert list(result.scores.values()) == pytest.approx([0.9] * len(candidates))
    for item in candidates:
        rows = result.for_item(item)
        top = rows.iloc[0]
        assert (top.piece_kind, top.piece_key) == ("purchase", newest.item_id)
        assert top.effect == pytest.approx(0.8) and top.score_without == pytest.approx(0.1)
        assert rows["effect"].iloc[1:].abs().max() == pytest.approx(0.0)  # every other piece: no change at all
    # every piece the prompt showed was left out once per candidate: purchases, similar customers, sentences
    kinds = result.table.groupby("piece_kind").size() / len(candidates)
    assert kinds["purchase"] == len(ctx.history) and kinds["similar customer"] == len(ctx.similar)
    assert kinds["profile sentence"] == len([p for p in context_pieces(ctx) if p.kind == "profile sentence"])


def test_stored_with_provenance_and_read_back_for_the_same_inputs(rec_ws: Workspace) -> None:
    engine = ScriptedEngine(rec_ws.settings)
    builder, recommender, user = setup(rec_ws, engine)
    candidates = stored_candidates(builder, user)
    first = Attributor(recommender).attribute(user, candidates)
    stored = rec_ws.store.attribution("sample", builder.protocol_id, user, first.key)
    assert len(stored) == len(first.table) and set(stored["engine"]) == {"scripted"}
    assert set(stored["model"]) == {"scripted-llm"} and stored["params"].str.contains("attribution-v1").all()
    engine.prompts.clear()
    again = Attributor(recommender).attribute(user, candidates)
    assert again.stored and engine.prompts == []  # read back: no model call
    assert again.scores == pytest.approx(first.scores)
    # the rationale length cannot change a yes/no score: same key; other candidates: another attribution
    longer = LLMRecommender(engine, builder, RecommendConfig(explain_top=5, max_new_tokens=50))
    assert Attributor(longer).attribute(user, candidates).stored
    assert not Attributor(recommender).attribute(user, candidates[:5]).stored


def test_ranks_and_keyword_pieces_follow_the_scores(rec_ws: Workspace) -> None:
    builder, recommender, user = setup(rec_ws, ScriptedEngine(rec_ws.settings))
    candidates = stored_candidates(builder, user)
    result = Attributor(recommender).attribute(user, candidates)
    for row in result.table.itertuples():
        others = [s for i, s in result.scores.items() if i != row.item_id]
        assert row.rank == rank_of(row.score, others)
    keywords = result.table[result.table["piece_kind"].isin(["image keywords", "catalog keywords"])]
    assert not keywords.empty
    for row in keywords.itertuples():  # a keyword piece is one of that candidate's own keywords
        own = builder.line(row.item_id).keywords
        assert row.piece_key == row.item_id and set(row.piece_text.split(", ")) <= set(own)
        others = [s for i, s in result.scores.items() if i != row.item_id]
        assert row.rank_without == rank_of(row.score_without, others)  # the other candidates keep their scores
    sentence = describe(next(result.table.itertuples()), "Striped shirt", "2020-03-02")
    assert "from" in sentence and " -> " in sentence


def test_keywords_the_catalog_names_are_the_catalogs() -> None:
    image, catalog = split_keywords(["black", "umbrella", "glossy finish"], "Umbrella Black. A black umbrella.")
    assert catalog == ["black", "umbrella"] and image == ["glossy finish"]


def test_only_what_the_prompt_showed_is_left_out(rec_ws: Workspace) -> None:
    engine = ScriptedEngine(rec_ws.settings)
    builder, recommender, user = setup(rec_ws, engine)
    candidates = stored_candidates(builder, user)[:3]
    full = recommender.prepare(user, candidates)[1]
    suffix = max(full.suffixes, key=len)
    # a budget that keeps the two newest purchases only (and no similar customers or profile sentences first)
    budget = engine.count_tokens(full.prefix + suffix, system=recommender.system) - 1
    tight = LLMRecommender(engine, builder, RecommendConfig(max_prompt_tokens=budget))
    ctx, prompt, ablations = Attributor(tight).ablations(user, candidates)
    assert prompt.trimmed.get("history", 0) >= 1
    left_out = {a.piece.key for a in ablations if a.piece is not None and a.piece.kind == "purchase"}
    dropped = {h.item_id for h in ctx.history[: prompt.trimmed["history"]]}
    assert left_out and not left_out & dropped
    for a in ablations[1:]:
        if a.piece.kind == "purchase":
            assert a.piece.text not in a.prefix and a.prefix != prompt.prefix


@pytest.mark.slow
def test_shared_prefix_scores_equal_each_ablated_prompt_alone(rec_ws: Workspace, builtin_engine) -> None:
    builder, recommender, user = setup(rec_ws, builtin_engine, RecommendConfig(n_similar=1))
    candidates = stored_candidates(builder, user)[:4]
    attributor = Attributor(recommender)
    _, _, ablations = attributor.ablations(user, candidates)
    result = attributor.attribute(user, candidates, reuse=False)
    lm, system = builtin_engine.lm, recommender.system
    for ab in ablations:
        alone = lm.score_yes_no_naive(ab.prefix, ab.suffixes, system=system)  # each full prompt on its own
        if ab.piece is None:
            expected = dict(zip(ab.order, alone.tolist(), strict=True))
            assert result.scores == pytest.approx(expected, abs=1e-4)
            continue
        rows = result.table[(result.table["piece_kind"] == ab.piece.kind) & (result.table["piece_key"] == ab.piece.key)]
        got = rows.set_index("item_id")["score_without"].to_dict()
        assert got == pytest.approx(dict(zip(ab.order, alone.tolist(), strict=True)), abs=1e-4)


def test_the_cli_explains_an_item_and_writes_an_offline_card(rec_ws: Workspace, monkeypatch, capsys) -> None:
    import re

    import mmrec_core.engines
    from mmrec_core.cli.main import main

    monkeypatch.setattr(mmrec_core.engines, "get_engine", ScriptedEngine)
    builder, _, user = setup(rec_ws, ScriptedEngine(rec_ws.settings))
    item = stored_candidates(builder, user)[0]
    root = str(rec_ws.settings.data_dir)
    rec_ws.close()  # the CLI opens the folder itself
    assert main(["--data-dir", root, "explain", "sample", user, item]) == 0
    out = capsys.readouterr().out
    assert f"{item} {builder.titles[item]}: score" in out and "among 21 candidates" in out
    lines = [line for line in out.splitlines() if re.match(r"\s+[+-]\d\.\d{3}  without ", line)]
    effects = [abs(float(line.split()[0])) for line in lines]
    assert lines and effects == sorted(effects, reverse=True)  # largest effect first
    assert main(["--data-dir", root, "explain", "sample", user, item]) == 0
    assert "read back (same prompts and model)" in capsys.readouterr().out
    assert main(["--data-dir", root, "explain", "sample", user, "no-such-item"]) == 2
    assert "Unknown item 'no-such-item'" in capsys.readouterr().err
    out_file = rec_ws.settings.data_dir / "card.html"
    assert main(["--data-dir", root, "card", "sample", user, "--out", str(out_file)]) == 0
    text = out_file.read_text()
    assert "opens offline" in capsys.readouterr().out
    assert not re.search(r"https?://", text) and user in text and "data:image/jpeg;base64," in text


def test_purchase_days_never_show_a_held_out_day(rec_ws: Workspace) -> None:
    from mmrec_core.explain.attribution import purchase_days

    builder, _, _ = setup(rec_ws, ScriptedEngine(rec_ws.settings))
    pid, checked = builder.protocol_id, 0
    for user in builder.data.parts["test"].users[:60]:
        held = rec_ws.store.held_out(pid, user).set_index("part")
        rows = rec_ws.store.user_purchases("sample", user)
        seen = rows[rows["seq"] != held.at["test", "seq"]]  # what the model may see for the test part
        bought = builder.input_history(user)
        assert list(seen["item_id"]) == bought
        days = purchase_days(rec_ws, "sample", pid, user, bought)
        for item, group in seen.groupby("item_id"):
            assert days[item] == str(group["ts"].max().date())  # the newest purchase the model saw
        test_item = held.at["test", "item_id"]
        if test_item in days:  # bought before: dated by the earlier purchase, never by the held-out one
            checked += 1
    assert checked > 0  # the sample has re-bought test items, so the case is exercised
