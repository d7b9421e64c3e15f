"""The LLM recommender: prompt assembly and trimming, answer validation, training-only context,
evidence and rationale flags, and the resumable evaluation. A scripted engine drives the logic on the
real sample data; the builtin engine checks the real model path once."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mmrec_core.data.splits import create_protocol, train_interactions
from mmrec_core.evaluate.llm import evaluate_llm
from mmrec_core.graph.build import latest_graph_id, load_graph
from mmrec_core.recommend.context import ContextBuilder, ItemLine, SimilarLine, UserContext
from mmrec_core.recommend.customer import model_candidates, score_customer, stored_candidates
from mmrec_core.recommend.evidence import Evidence, EvidenceFinder
from mmrec_core.recommend.llm import LLMRecommender, RecommendConfig, answer_scores, parse_answer
from mmrec_core.recommend.prompt import context_text, listwise_prompt, pointwise_prompt, shuffled
from mmrec_core.store.workspace import Workspace
from tests.fakes import ScriptedEngine


def words(text: str) -> int:
    return len(text.split())


def hand_context(n_history: int = 4, n_similar: int = 2) -> UserContext:
    history = [ItemLine(f"h{i}", f"History item {i}", ["top", f"colour{i}"]) for i in range(n_history)]
    similar = [SimilarLine(f"s{i}", f"Similar next {i}", ["dress"], f"user{i}", 0.9 - i / 10) for i in range(n_similar)]
    profile = "Likes black tops. Buys swimwear in summer. Avoids denim."
    return UserContext("u1", profile, history, similar, [h.item_id for h in history])


# -- prompt assembly -------------------------------------------------------------------------------
def test_candidate_comes_last_after_a_prefix_shared_by_all_candidates() -> None:
    ctx = hand_context()
    cands = [ItemLine("c1", "Red coat", ["coat", "red"]), ItemLine("c2", "Blue jeans", ["denim"])]
    prompt = pointwise_prompt(ctx, cands, words, 10_000)
    assert prompt.trimmed == {} and prompt.order == ["c1", "c2"]
    assert prompt.prefix.startswith("Customer profile: Likes black tops.")
    assert (
        prompt.prefix.index("History item 0") < prompt.prefix.index("History item 3") < prompt.prefix.index("Similar")
    )
    for cand, suffix in zip(cands, prompt.suffixes, strict=True):
        assert suffix.startswith(f"Candidate item: {cand.text()}") and cand.title not in prompt.prefix


@pytest.mark.parametrize(
    ("keep", "expected"),
    [
        ((3, 2, 0), {"history": 1}),  # a little too long: the oldest purchase goes first
        ((0, 1, 0), {"history": 4, "similar": 1}),  # then the least similar customers
        ((0, 0, 2), {"history": 4, "similar": 2, "profile_sentences": 2}),  # then the profile's first sentences
    ],
)
def test_trimming_drops_the_oldest_context_first(keep: tuple[int, int, int], expected: dict) -> None:
    ctx = hand_context()
    cand = [ItemLine("c1", "Red coat", ["coat", "red"])]
    suffix = pointwise_prompt(ctx, cand, words, 10_000).suffixes[0]
    budget = words(context_text(ctx, *keep) + suffix)  # exactly what fits when keeping `keep`
    prompt = pointwise_prompt(ctx, cand, words, budget)
    assert prompt.trimmed == expected and words(prompt.full()) <= budget
    assert prompt.suffixes[0] == suffix  # the candidate is never cut
    if keep[0] == 3:
        assert "History item 0" not in prompt.prefix and "History item 1" in prompt.prefix
    if keep[1] == 1:
        assert "Similar next 0" in prompt.prefix and "Similar next 1" not in prompt.prefix
    if keep[2] == 2:
        assert "Likes black" not in prompt.prefix and "Avoids denim." in prompt.prefix


def test_a_candidate_that_alone_exceeds_the_budget_is_an_error() -> None:
    with pytest.raises(ValueError, match="candidate text alone"):
        pointwise_prompt(hand_context(), [ItemLine("c", "very long title " * 10, ["x"])], words, 30)


def test_listwise_order_is_shuffled_per_user_and_repeatable() -> None:
    cands = [ItemLine(f"c{i}", f"Item {i}", []) for i in range(21)]
    firsts = {shuffled(cands, f"user{u}", 0)[0].item_id for u in range(30)}
    assert len(firsts) > 5  # the stored positive (c0) is not always shown as [1]
    assert [c.item_id for c in shuffled(cands, "u", 0)] == [c.item_id for c in shuffled(cands, "u", 0)]
    prompt = listwise_prompt(hand_context(), cands, words, 10_000)
    assert prompt.suffixes[0].startswith("Candidate items:\n[1] ")
    assert f"[1] {next(c for c in cands if c.item_id == prompt.order[0]).text()}" in prompt.suffixes[0]


# -- listwise answers --------------------------------------------------------------------------------
ORDER = ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("text", "valid", "ranking", "problem"),
    [
        ("<think>likes tops</think><answer>2</answer>", True, ["b"], ""),
        ("<think>x</think><answer>[3], 1, 3</answer>", True, ["c", "a"], ""),
        ("<think>x</think><answer>d</answer>", True, ["d"], ""),  # the item id itself
        ("<think>x</think><answer>item 4</answer>", True, ["d"], ""),
        ("<think>x</think><answer>5</answer>", False, [], "'5' is not a candidate"),
        ("<think>x</think><answer>0</answer>", False, [], "'0' is not a candidate"),
        ("<think>x</think><answer>2, 9</answer>", False, [], "'9' is not a candidate"),  # never partly mapped
        ("<think>x</think><answer>the blue one</answer>", False, [], "'the' is not a candidate"),
        ("<think>x</think><answer></answer>", False, [], "empty"),
        ("I think candidate 2.", False, [], "no <answer>"),
    ],
)
def test_listwise_answers_are_validated_never_mapped(text, valid, ranking, problem) -> None:
    answer = parse_answer(text, ORDER)
    assert answer.valid is valid and answer.ranking == ranking and problem in answer.problem
    scores = answer_scores(answer, ORDER)
    if valid:
        assert [ORDER[i] for i in np.argsort(-scores, kind="stable")[: len(ranking)]] == ranking
    else:
        assert (scores == 0).all()  # an invalid answer ranks nothing: every candidate ties


def test_rationale_is_the_think_part() -> None:
    assert parse_answer("<think> Black tops again. </think><answer>1</answer>", ORDER).rationale == "Black tops again."


# -- on the sample data: context, evidence, evaluation --------------------------------------------------
def test_context_comes_from_training_data_only(rec_ws: Workspace) -> None:
    pid = create_protocol(rec_ws.store, "sample")
    builder = ContextBuilder(rec_ws, "sample", pid)
    train = train_interactions(rec_ws.store, pid)
    held = rec_ws.store.sql_df("SELECT user_id, part, item_id FROM splits WHERE protocol_id = ?", [pid])
    held = {(r.user_id, r.part): r.item_id for r in held.itertuples()}
    sequences = {u: g["item_id"].tolist() for u, g in train.groupby("user_id")}
    users = builder.data.parts["test"].users
    builder.prepare_similar(users)
    for user in users:
        ctx = builder.context(user)
        assert ctx.bought == sequences[user] + [held[(user, "valid")]]  # test input: training + valid item
        assert [h.item_id for h in ctx.history] == ctx.bought[-5:]
        assert ctx.profile and ctx.notes == []
        assert len(ctx.similar) == 3 and user not in {s.similar_user for s in ctx.similar}
        for s in ctx.similar:  # what a similar customer bought next is in THEIR training sequence
            assert s.item_id in sequences[s.similar_user]
    with pytest.raises(KeyError, match="Unknown customer 'nobody'"):
        builder.context("nobody")


def test_no_sasrec_or_profile_is_stated_not_fatal(sample_workspace: Workspace) -> None:
    pid = create_protocol(sample_workspace.store, "sample")
    builder = ContextBuilder(sample_workspace, "sample", pid)
    ctx = builder.context(builder.data.parts["test"].users[0])
    assert ctx.profile == "" and ctx.similar == []
    assert any("no current profile" in n for n in ctx.notes) and any("mmrec train sasrec" in n for n in ctx.notes)


def test_score_customer_ranks_explains_and_flags(rec_ws: Workspace) -> None:
    pid = create_protocol(rec_ws.store, "sample")
    engine = ScriptedEngine(rec_ws.settings)
    builder = ContextBuilder(rec_ws, "sample", pid)
    user = builder.data.parts["test"].users[3]
    cands = stored_candidates(builder, user)
    rec, table = score_customer(LLMRecommender(engine, builder), EvidenceFinder(builder), user, cands)
    assert sorted(table["item_id"]) == sorted(cands) and list(table["rank"]) == list(range(1, 22))
    assert (np.diff(table["score"].to_numpy()) <= 0).all()
    prompt = rec.prompt
    alone = [engine.score_yes_no(prompt.prefix, [s])[0] for s in prompt.suffixes]
    expected = dict(zip(prompt.order, alone, strict=True))
    assert np.allclose(table.set_index("item_id")["score"].loc[list(expected)], list(expected.values()))
    explained = table[table["rationale"] != ""]
    assert list(explained["rank"]) == [1, 2, 3]  # the top 3 get a rationale
    finder = EvidenceFinder(builder)
    for row in explained.itertuples():  # scripted rationale: "... It is a red wool coat."
        own = finder.item_texts[row.item_id]
        written = finder.rationale_flags(row.written.raw, row.item_id, rec.context)
        assert ("wool" in written) == ("wool" not in own)
        assert "coat" not in own or "coat" not in written
        # what is shown keeps no unsupported claim: the sentence with one is removed, and said to be
        assert row.flags == []
        removed = any(n == "removed (unsupported claims): It is a red wool coat." for n in row.written.notes())
        assert removed == bool(written)
        assert ("It is a red wool coat." in row.rationale) == (not written)


def test_evidence_finds_bought_neighbours_and_similar_customers(rec_ws: Workspace) -> None:
    pid = create_protocol(rec_ws.store, "sample")
    builder = ContextBuilder(rec_ws, "sample", pid)
    finder = EvidenceFinder(builder)
    edges = load_graph(rec_ws.store, "sample", latest_graph_id(rec_ws.store, "sample", pid))
    checked = 0
    for user in builder.data.parts["test"].users[:40]:
        ctx = builder.context(user)
        bought = set(ctx.bought)
        for item in stored_candidates(builder, user):
            ev = finder.for_item(ctx, item)
            linked = edges[(edges["src"] == item) & edges["dst"].isin(bought)]["dst"].tolist()
            linked += edges[(edges["dst"] == item) & edges["src"].isin(bought)]["src"].tolist()
            assert sorted(i for i, _, _ in ev.neighbours_bought) == sorted(set(linked))
            for other, via in ev.similar_bought:
                assert other in {s.similar_user for s in ctx.similar}
                assert via in {builder.data.item_ids[i] for i in builder.data.sequences[other]}
            checked += bool(ev.neighbours_bought) + bool(ev.similar_bought)
    assert checked > 0  # the sample has real graph and similar-customer evidence to find


def test_rationales_are_asked_to_cite_the_evidence_and_their_citations_are_checked(rec_ws: Workspace) -> None:
    pid = create_protocol(rec_ws.store, "sample")
    engine = ScriptedEngine(rec_ws.settings)
    builder = ContextBuilder(rec_ws, "sample", pid)
    finder = EvidenceFinder(builder)
    user = builder.data.parts["test"].users[3]
    rec, table = score_customer(LLMRecommender(engine, builder), finder, user, stored_candidates(builder, user))
    explained = table[table["rationale"] != ""]
    asked = [p for p in engine.prompts if "In one or two sentences" in p]
    for row in explained.itertuples():  # the facts found without the LLM go into the rationale's prompt
        facts = finder.for_item(rec.context, row.item_id).for_prompt(builder.titles)
        prompt = next(p for p in asked if builder.line(row.item_id).text() in p)
        assert (f"What supports it: {facts}" in prompt) == bool(facts)
        assert row.cites == row.evidence_detail.cited_by(row.rationale, builder.titles)

    ev = Evidence("x", history_matches=[("black", 3)], neighbours_bought=[("n1", 0.5, "co-bought")])
    titles = {"n1": "Shape Up 30 den 1p Tights"}
    assert ev.cited_by("Black, like three of her past purchases.", titles) == ["keyword 'black'"]
    assert ev.cited_by("She bought the Shape Up 30 den 1p Tights.", titles) == ["item 'Shape Up 30 den 1p Tights'"]
    assert ev.cited_by("A timeless piece.", titles) == []
    assert ev.for_prompt(titles) == (
        "it shares black with the customer's past purchases; "
        "the customer bought its neighbour Shape Up 30 den 1p Tights"
    )


_TITLES = {"x": "Tilda knit top", "n1": "Shape Up 30 den 1p Tights"}


@pytest.mark.parametrize(
    "evidence, cited",
    [
        (Evidence("x", bought_before=True, history_matches=[("black", 2)]), ["a repeat purchase"]),
        (Evidence("x", history_matches=[("black", 3), ("jersey", 2)]), ["keyword 'black'", "keyword 'jersey'"]),
        (Evidence("x", neighbours_bought=[("n1", 0.5, "co-bought")]), ["item 'Shape Up 30 den 1p Tights'"]),
        (Evidence("x", similar_bought=[("u9", "x")]), ["item 'Tilda knit top'"]),
        (Evidence("x", profile_matches=["knit"]), ["keyword 'knit' (profile)"]),
        (Evidence("x"), []),
    ],
)
def test_the_added_evidence_sentence_cites_the_strongest_piece(evidence: Evidence, cited: list[str]) -> None:
    from mmrec_core.recommend.rationale import evidence_sentence

    sentence = evidence_sentence(evidence, _TITLES)
    assert evidence.cited_by(sentence, _TITLES) == cited
    assert (sentence == "") == (cited == [])


def test_settling_removes_invented_sentences_and_adds_a_citation(rec_ws: Workspace) -> None:
    from mmrec_core.recommend.rationale import NO_EVIDENCE, settle

    pid = create_protocol(rec_ws.store, "sample")
    builder = ContextBuilder(rec_ws, "sample", pid)
    finder = EvidenceFinder(builder)
    user = builder.data.parts["test"].users[0]
    ctx = builder.context(user)
    found = {i: finder.for_item(ctx, i) for i in stored_candidates(builder, user)}
    item = next(i for i, ev in found.items() if ev.history_matches and "wool" not in finder.item_texts[i])
    keyword = found[item].history_matches[0][0]
    # the LLM cites the evidence itself: shown as written
    cites = f"It shares {keyword} with their past purchases."
    shown = settle(finder, cites, found[item], ctx)
    assert shown.text == cites and shown.notes() == []
    # an invented material is removed, and with it the only sentence: the evidence is stated instead
    written = settle(finder, "It is a lovely wool piece.", found[item], ctx)
    assert written.dropped == ["It is a lovely wool piece."] and written.added
    assert found[item].cited_by(written.text, builder.titles) and not finder.rationale_flags(written.text, item, ctx)
    # a grounded sentence that cites nothing is kept, and the citation follows it
    plain = settle(finder, "A good choice for this customer.", found[item], ctx)
    assert plain.text.startswith("A good choice for this customer. ") and plain.added in plain.text
    # nothing to cite and nothing left: said so, not invented
    plain_items = [i for i, ev in found.items() if not ev.for_prompt(builder.titles)]
    bare = next(i for i in plain_items if "wool" not in finder.item_texts[i])
    assert settle(finder, "It is a lovely wool piece.", found[bare], ctx).text == NO_EVIDENCE


def test_rationale_flags_only_unsupported_item_attributes(rec_ws: Workspace) -> None:
    pid = create_protocol(rec_ws.store, "sample")
    builder = ContextBuilder(rec_ws, "sample", pid)
    finder = EvidenceFinder(builder)
    ctx = builder.context(builder.data.parts["test"].users[0])
    item = next(i for i, t in finder.item_texts.items() if "black" in t and "wool" not in t and "red" not in t)
    assert finder.rationale_flags("This is a black item.", item, ctx) == []
    assert finder.rationale_flags("This item is made of wool and is red.", item, ctx) == ["wool", "red"]
    ctx.profile = "Loves red clothes."
    assert finder.rationale_flags("The customer prefers red.", item, ctx) == []  # about the customer


def test_model_candidates_leave_the_history_out(rec_ws: Workspace) -> None:
    pid = create_protocol(rec_ws.store, "sample")
    builder = ContextBuilder(rec_ws, "sample", pid)
    user = builder.data.parts["test"].users[0]
    top = model_candidates(rec_ws, builder, "sasrec", user, 15)
    assert len(top) == len(set(top)) == 15 and not set(top) & set(builder.input_history(user))


def test_runs_record_the_engine_and_model_that_made_them(rec_ws: Workspace) -> None:
    from mmrec_core.recommend.prompts import REC_VERSION

    result = evaluate_llm(rec_ws, ScriptedEngine(rec_ws.settings), "sample", n_users=4, batch=4)
    run = rec_ws.store.run(result.run_id)
    assert (run["engine"], run["model"], run["prompt_version"]) == ("scripted", "scripted-llm", REC_VERSION)
    trained = rec_ws.store.latest_train_run("sample", create_protocol(rec_ws.store, "sample"), "sasrec")
    assert (trained["engine"], trained["model"], trained["prompt_version"]) == ("torch", "sasrec", None)


def test_evaluation_is_resumable_and_matches_the_stored_scores(rec_ws: Workspace) -> None:
    engine = ScriptedEngine(rec_ws.settings)
    first = evaluate_llm(rec_ws, engine, "sample", n_users=30, batch=8)
    assert (first.scored, first.reused) == (30, 0) and first.table.loc["all", "users"] == 30
    rows = rec_ws.store.sql_df("SELECT * FROM llm_scores")
    assert len(rows) == 30 and (rows["engine"] == "scripted").all() and (rows["prompt_version"] == "rec-v2").all()
    # HR@5 recomputed by hand from the stored scores (positive first): with `higher` candidates above it and
    # `ties` level with it, the positive is equally likely at ranks higher+1 .. higher+1+ties
    hits = []
    for scores in rows["scores"]:
        higher, ties = np.sum(np.asarray(scores[1:]) > scores[0]), np.sum(np.asarray(scores[1:]) == scores[0])
        hits.append(sum(higher + 1 + t <= 5 for t in range(ties + 1)) / (ties + 1))
    assert first.table.loc["all", "HR@5"] == pytest.approx(np.mean(hits))
    n_prompts = len(engine.prompts)
    again = evaluate_llm(rec_ws, engine, "sample", n_users=30, batch=8)
    assert (again.scored, again.reused) == (0, 30) and len(engine.prompts) == n_prompts  # read back, not re-run
    no_rationales = RecommendConfig(explain_top=0)  # as `mmrec eval llm` and `eval --all` run it: same scores
    assert evaluate_llm(rec_ws, engine, "sample", config=no_rationales, n_users=30).reused == 30
    assert len(engine.prompts) == n_prompts
    assert again.table.loc["all", "HR@5"] == first.table.loc["all", "HR@5"]
    assert {"LLM pointwise", "popularity", "sasrec"} <= set(first.compare.index)
    assert (first.compare["users"] == 30).all() and (first.compare["seconds_per_user"] > 0).all()
    runs = rec_ws.store.sql_df("SELECT method, params FROM runs WHERE kind = 'eval'")
    assert (runs["method"] == "llm-pointwise").sum() == 3 and '"subset": true' in runs["params"].iloc[0]


def test_an_interrupted_evaluation_keeps_finished_batches(rec_ws: Workspace) -> None:
    engine = ScriptedEngine(rec_ws.settings)
    calls = {"n": 0}
    original = engine.score_yes_no

    def failing(prefix, suffixes, system=None):
        calls["n"] += 1
        if calls["n"] > 10:
            raise RuntimeError("killed")
        return original(prefix, suffixes, system)

    engine.score_yes_no = failing
    with pytest.raises(RuntimeError):
        evaluate_llm(rec_ws, engine, "sample", n_users=20, batch=4)
    assert rec_ws.store.scalar("SELECT count(*) FROM llm_scores") == 8  # two whole batches, nothing half-written
    engine.score_yes_no = original
    result = evaluate_llm(rec_ws, engine, "sample", n_users=20, batch=4)
    assert (result.scored, result.reused) == (12, 8)


def test_listwise_evaluation_reports_invalid_answers(rec_ws: Workspace) -> None:
    engine = ScriptedEngine(rec_ws.settings)
    result = evaluate_llm(rec_ws, engine, "sample", config=RecommendConfig(mode="listwise"), n_users=40)
    rows = rec_ws.store.sql_df("SELECT valid, problem, answer, scores FROM llm_scores WHERE mode = 'listwise'")
    invalid = ~rows["valid"]
    assert 0 < invalid.sum() < 40  # the scripted model answers out of range for some prompts
    assert result.table.loc["all", "invalid_rate"] == pytest.approx(invalid.mean())
    assert rows.loc[invalid, "problem"].str.contains("is not a candidate").all()
    per_user = result.per_user.set_index("user_id")
    assert (per_user.loc[~per_user["valid"], "AUC"] == 0.5).all()  # all tied: chance, never a free hit
    assert {"LLM listwise", "popularity"} <= set(result.compare.index)


def test_evaluation_without_sasrec_names_the_fix(sample_workspace: Workspace) -> None:
    with pytest.raises(KeyError, match="mmrec train sasrec sample"):
        evaluate_llm(sample_workspace, ScriptedEngine(sample_workspace.settings), "sample", n_users=2)


# -- the real builtin model --------------------------------------------------------------------------
def test_builtin_pointwise_scores_do_not_depend_on_the_other_candidates(sample_workspace, builtin_engine) -> None:
    pid = create_protocol(sample_workspace.store, "sample")
    builder = ContextBuilder(sample_workspace, "sample", pid, n_similar=0)
    user = builder.data.parts["test"].users[5]
    cands = stored_candidates(builder, user)
    recommender = LLMRecommender(builtin_engine, builder, RecommendConfig(explain_top=1))
    rec = recommender.recommend(user, cands)
    assert rec.scores.shape == (21,) and ((rec.scores > 0) & (rec.scores < 1)).all() and np.ptp(rec.scores) > 0
    alone = builtin_engine.score_yes_no(rec.prompt.prefix, [rec.prompt.suffixes[4]], system=recommender.system)
    assert rec.scores[cands.index(rec.prompt.order[4])] == pytest.approx(alone[0], abs=1e-4)
    assert len(rec.rationales) == 1 and len(next(iter(rec.rationales.values()))) > 10
    rendered = recommender.render(rec.prompt.full(0))
    assert "<|im_start|>system" in rendered and rendered.rstrip().endswith("<|im_start|>assistant")


# -- the command line (builtin engine) ------------------------------------------------------------
def test_cli_score_and_eval_llm(sample_workspace: Workspace, monkeypatch, capsys) -> None:
    from mmrec_core.cli.main import main
    from tests.conftest import MODEL_CACHE

    monkeypatch.setenv("MMREC_MODEL_CACHE", str(MODEL_CACHE))
    root = str(sample_workspace.settings.data_dir)
    pid = create_protocol(sample_workspace.store, "sample")
    user = ContextBuilder(sample_workspace, "sample", pid).data.parts["test"].users[0]
    sample_workspace.close()  # one writer per DuckDB file: the command opens it now

    assert main(["--data-dir", root, "score", "sample", "nobody", "--similar-users", "0"]) == 2
    assert "Unknown customer 'nobody'" in capsys.readouterr().err
    assert main(["--data-dir", root, "eval", "llm", "sample", "--users", "2"]) == 2
    assert "mmrec train sasrec sample" in capsys.readouterr().err

    args = ["score", "sample", user, "--similar-users", "0", "--explain", "1", "--show-prompt"]
    assert main(["--data-dir", root, *args]) == 0
    out = capsys.readouterr().out
    assert f"{user}: 21 candidates (stored test candidates), pointwise" in out
    ranked = [line for line in out.splitlines() if re.match(r"\s*\d+\. ", line)]
    assert len(ranked) == 21 and out.count("rationale:") == 1 and out.count("evidence:") == 21
    assert "note: no similar customers" not in out and "--- exact prompt" in out and "Candidate item:" in out

    assert main(["--data-dir", root, "eval", "llm", "sample", "--users", "3", "--similar-users", "0"]) == 0
    out = capsys.readouterr().out
    assert "3 users (3 scored now, 0 read back" in out and "a seeded subset of 3 users" in out
    for row in ("LLM pointwise", "popularity"):  # the comparison on the same users and candidates
        assert re.search(rf"^{row}\s+[\d.]+", out, flags=re.M)
    assert "seconds_per_user" in out


def test_eval_rationales_counts_citations_and_unsupported_claims(rec_ws: Workspace) -> None:
    from mmrec_core.evaluate.rationales import evaluate_rationales

    create_protocol(rec_ws.store, "sample")
    summary, table = evaluate_rationales(rec_ws, ScriptedEngine(rec_ws.settings), "sample", users=4)
    assert summary["users"] == 4 and summary["rationales"] == len(table) == 12  # the top 3 of each
    assert summary["cite verified evidence"] == (table["cites"] != "").mean()
    # the scripted rationale calls every item "a red wool coat": unsupported wherever the item is not one,
    # so the LLM alone invents claims and the settled rationales do not
    assert 0 < summary["LLM alone: unsupported rate"] <= 1 and summary["sentences removed"] > 0
    assert summary["unsupported-claim rate"] == 0 and summary["rationales with one"] == 0
    # where evidence exists, every shown rationale cites it (the LLM's, or a sentence stating it)
    assert summary["cite, where evidence exists"] == 1.0
    assert summary["cite verified evidence"] == table["had evidence"].mean()
