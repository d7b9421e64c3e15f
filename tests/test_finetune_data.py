"""Instruction-tuning data: training interactions only, the recommender's own prompts, the task mix,
and the loss on the answer tokens only (TRL's SFT label mask on a tiny real-architecture model)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from datasets import Dataset

from mmrec_core.config import load_settings
from mmrec_core.data.splits import create_protocol
from mmrec_core.finetune.configs import TrainDataConfig
from mmrec_core.finetune.data import TrainDataBuilder, grounded_summary
from mmrec_core.recommend.context import ContextBuilder
from mmrec_core.store.workspace import Workspace, open_workspace
from mmrec_core.textualize.texts import item_lines


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="module")
def examples(rec_db: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[ContextBuilder, object]:
    """300 examples built once for the module (from a private copy of the prepared sample)."""
    root = tmp_path_factory.mktemp("train_data") / "data"
    shutil.copytree(rec_db, root)
    ws = open_workspace(load_settings(root))
    builder = ContextBuilder(ws, "sample", create_protocol(ws.store, "sample"))
    config = TrainDataConfig(n_examples=300, pick_candidates=8)
    yield builder, TrainDataBuilder(builder, words, config).build()
    ws.close()


def user_text(row) -> str:
    return next(m["content"] for m in row["prompt"] if m["role"] == "user")


def test_the_mix_follows_the_ratios_and_yes_no_is_balanced(examples) -> None:
    _, frame = examples
    assert frame["task"].value_counts().to_dict() == {"yesno": 150, "pick": 60, "recon": 45, "summary": 45}
    answers = frame[frame["task"] == "yesno"]["completion"].map(lambda c: c[0]["content"])
    assert answers.value_counts().to_dict() == {"Yes": 75, "No": 75}


def test_no_held_out_item_is_a_target_or_in_a_prompt_context(examples) -> None:
    builder, frame = examples
    pid = builder.protocol_id
    held = builder.ws.store.sql_df("SELECT user_id, item_id FROM splits WHERE protocol_id = ?", [pid])
    held = held.groupby("user_id")["item_id"].apply(set).to_dict()
    sequences = {u: [str(builder.data.item_ids[i]) for i in s] for u, s in builder.data.sequences.items()}
    lines, summaries = item_lines(builder.ws.store, "sample"), 0
    for row in frame[frame["task"].isin(["yesno", "pick", "summary"])].itertuples():
        text = user_text(row._asdict())
        history = re.search(r"Their last purchases, oldest first:\n((?:- .*\n)+)", text)
        seq = sequences[row.user_id]
        assert 1 <= row.cut < len(seq)
        if row.task == "summary":  # the stored block summary that ends at or before the target, asked as built
            listed = re.findall(r"^- (.+)$", text, flags=re.M)
            steps = [(end, summary) for end, summary in builder.chains[row.user_id] if end <= row.cut]
            if steps:
                start = steps[-2][0] if len(steps) > 1 else 0
                assert listed == [lines[i] for i in seq[start : steps[-1][0]]]
                assert row.completion[0]["content"] == steps[-1][1]
                summaries += 1
            else:  # no block has ended yet: the last items' keywords make the target
                assert len(listed) == min(3, row.cut)
            continue
        shown = [builder.line(i).text() for i in seq[: row.cut][-5:]]
        assert history is not None and history.group(1).splitlines() == [f"- {s}" for s in shown]
        if row.task == "pick" or row.completion[0]["content"] == "Yes":
            assert row.item_id == seq[row.cut]  # the target: a TRAINING item right after the context
        else:  # a negative: never bought in training
            assert row.item_id not in seq
    positives = frame[(frame["task"] == "pick") | frame["completion"].map(lambda c: c[0]["content"] == "Yes")]
    assert summaries > 0
    assert not any(  # so no valid/test target is ever learned as a positive
        i in held.get(u, set()) - set(sequences[u])
        for u, i in zip(positives["user_id"], positives["item_id"], strict=True)
    )


def test_a_cut_context_sees_only_the_items_before_the_target(rec_ws: Workspace) -> None:
    builder = ContextBuilder(rec_ws, "sample", create_protocol(rec_ws.store, "sample"))
    checked = 0
    for user, seq in list(builder.data.sequences.items())[:60]:
        for cut in range(1, len(seq)):
            ctx = builder.context(user, cut)
            assert ctx.bought == [str(builder.data.item_ids[i]) for i in seq[:cut]]
            ends = [end for end, _ in builder.chains[user]]
            usable = [text for end, text in builder.chains[user] if end <= cut]
            assert ctx.profile == (usable[-1] if usable else "")  # never a summary that saw the target
            checked += bool(usable) and len(ends) > 1 and ends[-1] > cut
    assert checked > 0  # some examples really use an earlier summary than the final profile


def test_pick_answers_name_the_target_among_shuffled_candidates(examples) -> None:
    builder, frame = examples
    positions = []
    for row in frame[frame["task"] == "pick"].itertuples():
        answer = row.completion[0]["content"]
        number = int(re.fullmatch(r"<think>.+</think><answer>(\d+)</answer>", answer, flags=re.S).group(1))
        listing = dict(re.findall(r"^\[(\d+)\] (.+)$", user_text(row._asdict()), flags=re.M))
        assert listing[str(number)] == builder.line(row.item_id).text() and len(listing) == 8
        positions.append(number)
    assert len(set(positions)) > 3  # the target is not always shown first


def test_grounded_summary_uses_only_the_items_words() -> None:
    text = grounded_summary(
        [["top", "black", "cotton", "basic"], ["top", "white", "cotton"], ["trousers", "black"]],
        {"a": "Top", "b": "Trousers"},
    )
    assert text.startswith("This customer buys top, trousers in black, white.")
    assert "cotton" in text and "basic" in text


def test_sft_puts_the_loss_on_the_answer_tokens_only(examples, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tests.conftest import MODEL_CACHE
    from tests.tiny_models import make_tiny_causal_lm, smollm2_tokenizer

    _, frame = examples
    smollm2_tokenizer(MODEL_CACHE)
    folder = make_tiny_causal_lm(tmp_path / "tiny", "llama", MODEL_CACHE / "smollm2-tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = frame.groupby("task").head(2)[["prompt", "completion"]].to_dict("records")
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_length=2048, report_to=[], use_cpu=True)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(folder),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    for row, ids, mask, labels in zip(rows, batch["input_ids"], batch["attention_mask"], batch["labels"], strict=True):
        answer = row["completion"][0]["content"]
        learned = tokenizer.decode(labels[labels != -100])
        assert learned == f"{answer}<|im_end|>\n"  # the answer (and its end marker), nothing of the prompt
        text = tokenizer.decode(ids[mask == 1])  # the prompt as the recommender renders it, then the answer
        assert text.endswith(f"<|im_start|>assistant\n{answer}<|im_end|>\n")
