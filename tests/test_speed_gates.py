"""Quality gates of the speed paths (issue 20), on the real sample with the builtin engine.

Every fast path must give what the plain path gives: batched, length-sorted generation with a shared
prefix read once equals each prompt generated alone; the shared-prefix yes/no scores of real recommender
prompts equal each full prompt scored alone (gate: within 0.02); rationales written in one batch equal
those written one by one; reading the next batch's images in a second thread changes no stored output.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmrec_core.core.prompts import FASHION
from mmrec_core.data.splits import create_protocol
from mmrec_core.engines import GenerationOptions
from mmrec_core.engines.llm import _common_prefix
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.recommend.customer import stored_candidates
from mmrec_core.recommend.llm import LLMRecommender, RecommendConfig
from mmrec_core.textualize.build import TextualizeConfig, textualize
from mmrec_core.textualize.keywords import parse_keywords
from mmrec_core.textualize.prompts import KEYWORDS, keyword_chat

pytestmark = pytest.mark.slow


def sample_texts(ws, n: int) -> list[str]:
    items = ws.store.items("sample").head(n)
    return [str(t or title) for t, title in zip(items["text"], items["title"], strict=True)]


def test_batched_generation_with_a_shared_prefix_equals_one_prompt_at_a_time(sample_workspace, builtin_engine):
    prompts = [keyword_chat(t, FASHION) for t in sample_texts(sample_workspace, 10)]
    system = KEYWORDS.system_for(FASHION)
    lm = builtin_engine.lm
    encoded = [lm.encode(p, system) for p in prompts]
    assert _common_prefix(encoded) > 60  # system message and worked example: computed once per batch
    options = GenerationOptions(max_new_tokens=32, batch_size=10)
    batched = builtin_engine.generate(prompts, options, system)
    alone = [builtin_engine.generate([p], GenerationOptions(max_new_tokens=32), system)[0] for p in prompts]
    assert sum(b == a for b, a in zip(batched, alone, strict=True)) >= 9, list(zip(batched, alone, strict=True))
    assert kept_share(batched, alone) >= 0.9  # the gate on keyword facet values


def kept_share(answers: list[str], reference: list[str]) -> float:
    """Mean share of the reference answers' keywords that the answers keep (an empty reference: kept if empty)."""
    shares = []
    for answer, ref in zip(answers, reference, strict=True):
        got, want = set(parse_keywords(answer, 12)), set(parse_keywords(ref, 12))
        shares.append(len(got & want) / len(want) if want else float(not got))
    return float(np.mean(shares))


def test_stop_strings_cut_each_row_where_its_own_answer_stops(builtin_engine):
    prompts = ["Describe a red summer dress in two sentences.", "Name three colours of winter coats."]
    full = builtin_engine.generate(prompts, GenerationOptions(max_new_tokens=24, batch_size=2))
    cut = builtin_engine.generate(prompts, GenerationOptions(max_new_tokens=24, batch_size=2, stop=(" ",)))
    assert all(" " in whole for whole in full)  # each answer runs past its first word
    assert cut == [whole.split(" ")[0] for whole in full]


@pytest.fixture
def sample_recommender(rec_ws, builtin_engine):
    builder = ContextBuilder(rec_ws, "sample", create_protocol(rec_ws.store, "sample"), "test", n_similar=0)
    return builder, LLMRecommender(builtin_engine, builder, RecommendConfig(n_similar=0, explain_top=0))


def test_shared_prefix_scores_of_real_prompts_are_within_the_gate(sample_recommender, builtin_engine):
    builder, recommender = sample_recommender
    worst = 0.0
    for user in builder.data.parts["test"].users[:6]:
        _, prompt = recommender.prepare(user, stored_candidates(builder, user))
        fast = builtin_engine.score_yes_no(prompt.prefix, prompt.suffixes, system=recommender.system)
        alone = builtin_engine.lm.score_yes_no_naive(prompt.prefix, prompt.suffixes, system=recommender.system)
        assert len(fast) == 21
        worst = max(worst, float(np.abs(fast - alone).max()))
    assert worst <= 0.02


def test_rationales_in_one_batch_equal_rationales_one_by_one(sample_recommender):
    builder, recommender = sample_recommender
    user = builder.data.parts["test"].users[0]
    ctx, top = builder.context(user), stored_candidates(builder, user)[:3]
    together = recommender.explain(ctx, top)
    alone = {item: recommender.explain(ctx, [item])[item] for item in top}
    assert list(together) == top and sum(together[i] == alone[i] for i in top) >= 2
    assert all(len(text.split()) >= 3 for text in together.values())


def test_reading_images_in_a_second_thread_changes_no_stored_output(sample_workspace, builtin_engine):
    items = list(sample_workspace.store.items("sample")["item_id"][:4])
    stored = {}
    for overlap in (False, True):
        config = TextualizeConfig(batch_size=2, force=True, keyword_tokens=24, serial_vision=not overlap)
        report = textualize(sample_workspace, builtin_engine, "sample", items, config)
        assert report.done == 4 and not report.failed
        rows = sample_workspace.store.latest_keywords("sample").set_index("item_id").loc[items]
        descriptions = sample_workspace.store.sql_df("SELECT item_id, description, facts FROM descriptions")
        stored[overlap] = (rows["keywords"].map(list).tolist(), descriptions.sort_values("item_id").values.tolist())
    assert stored[True] == stored[False]
