"""`mmrec report --markdown` on the bundled sample results: its figures are the stored ones, and RESULTS.md is it."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from mmrec_core.cli.main import main
from mmrec_core.config import load_settings
from mmrec_core.data.ingest import ensure_sample_dataset
from mmrec_core.evaluate.leaderboard import METRICS
from mmrec_core.evaluate.markdown import markdown_report
from mmrec_core.store.workspace import open_workspace

RESULTS = Path(__file__).resolve().parent.parent / "RESULTS.md"


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory):
    """A fresh data folder after its first start: the sample and its bundled results (sample_data/state)."""
    ws = open_workspace(load_settings(tmp_path_factory.mktemp("bundled") / "data"))
    ensure_sample_dataset(ws, with_results=True)
    protocol_id = ws.store.protocols("sample")["protocol_id"].iloc[0]
    yield ws, protocol_id, markdown_report(ws, "sample", protocol_id)
    ws.close()


def section(markdown: str, title: str) -> pd.DataFrame:
    """The Markdown table under the heading that starts with `title`, as strings."""
    block = markdown.split(f"### {title}", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("|")]
    split = [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows]
    return pd.DataFrame(split[2:], columns=split[0])


def stored(ws, run_id: str, subset: str = "all") -> pd.Series:
    metrics = ws.store.run_metrics([run_id])
    return metrics[metrics["subset"] == subset].set_index("name")["value"]


def test_the_leaderboard_shows_the_stored_metrics_of_every_comparable_run(bundled) -> None:
    ws, _, md = bundled
    board = section(md, "Leaderboard")
    assert len(board) >= 6 and "llm-pointwise zero-shot" in set(board["run"])
    for row in board.to_dict("records"):
        values = stored(ws, row["eval run"].strip("`"))
        for m in METRICS:
            assert float(row[m].split()[0]) == pytest.approx(values[m], abs=5e-4), (row["run"], m)
        assert int(row["users"]) == int(values["users"])


def test_warm_and_cold_rows_are_the_stored_subsets(bundled) -> None:
    ws, _, md = bundled
    split = section(md, "Warm and cold test items")
    board = section(md, "Leaderboard")
    run_of = dict(zip(board["run"], board["eval run"], strict=True))
    for row in split.to_dict("records"):
        run_id = run_of[row["run"]].strip("`")
        for group in ("warm", "cold"):
            values = stored(ws, run_id, group)
            for m in ("HR@5", "NDCG@5", "AUC"):
                assert float(row[f"{m} {group}"]) == pytest.approx(values[m], abs=5e-4), (run_id, m, group)
    header = re.search(r"### Warm and cold test items \(users: warm (\d+), cold (\d+)\)", md)
    cold = ws.store.test_targets("sample", bundled[1])["cold"]
    assert (int(header[1]), int(header[2])) == ((~cold).sum(), cold.sum())


def test_the_paired_table_compares_against_the_best_model_without_an_llm(bundled) -> None:
    _, _, md = bundled
    best = section(md, "Leaderboard")
    baseline = next(r for r in best["run"] if not r.startswith("llm-"))
    assert f"### Against the strongest baseline ({baseline})" in md
    paired = section(md, "Against the strongest baseline")
    assert baseline not in set(paired["run"]) and len(paired) == len(best) - 1
    for row in paired.to_dict("records"):
        lo, hi = map(float, row["95% interval"].strip("[]").split(", "))
        assert lo <= float(row["NDCG@5 difference"]) <= hi
        assert row["excludes zero"] == ("yes" if lo > 0 or hi < 0 else "no")


def test_paired_and_ablation_rows_are_split_by_warm_and_cold_test_items_from_the_stored_ranks(bundled) -> None:
    from mmrec_core.evaluate.leaderboard import paired_values, user_metrics

    ws, protocol_id, md = bundled
    cold = ws.store.test_targets("sample", protocol_id).set_index("user_id")["cold"]
    board = section(md, "Leaderboard")
    run_of = {r: e.strip("`") for r, e in zip(board["run"], board["eval run"], strict=True)}
    baseline = run_of[next(r for r in board["run"] if not r.startswith("llm-"))]
    paired, ablations = section(md, "Against the strongest"), section(md, "Ablations")
    pairs = [(row, run_of[row["run"]], baseline) for row in paired.to_dict("records")]
    pairs += [(row, row["eval run"].strip("`"), run_of[row["setting"]]) for row in ablations.to_dict("records")]
    assert len(pairs) >= 15
    for row, run_a, run_b in pairs:
        a, b = user_metrics(ws, run_a)["NDCG@5"], user_metrics(ws, run_b)["NDCG@5"]
        for group, users in (("warm", cold.index[~cold]), ("cold", cold.index[cold])):
            expected = paired_values(a[a.index.isin(users)], b[b.index.isin(users)], "NDCG@5")
            shown = row[f"{group}: difference [95%]"]
            assert shown == f"{expected.diff:+.4f} [{expected.ci[0]:+.4f}, {expected.ci[1]:+.4f}]", (run_a, group)


def test_whole_catalog_rows_are_split_by_warm_and_cold_test_items(bundled) -> None:
    """Models: their stored warm/cold full-catalog metrics; a two-stage run: recomputed from its stored ranks."""
    from mmrec_core.data.metrics import metrics_from_counts
    from mmrec_core.evaluate.leaderboard import full_catalog_board

    ws, protocol_id, md = bundled
    shown = section(md, "Whole catalog").set_index("run")
    board = full_catalog_board(ws, "sample", protocol_id).set_index("label")
    cold = ws.store.test_targets("sample", protocol_id).set_index("user_id")["cold"]
    two_stage = [label for label in board.index if " top-" in label]
    assert two_stage and len(board) > len(two_stage) and list(shown.index) == list(board.index)
    for label, run_id in board["run_id"].items():
        if label in two_stage:
            ranks = ws.store.user_ranks(run_id)
            hits = metrics_from_counts(ranks["greater"], ranks["ties"], ranks["competitors"], ks=(10, 50))
            is_cold = cold.reindex(ranks["user_id"]).to_numpy(dtype=bool)
            expected = {f"Recall@{k} {g}": hits[f"HR@{k}"][m].mean() for g, m in (("warm", ~is_cold), ("cold", is_cold))
                        for k in (10, 50)}  # fmt: skip
        else:
            stored = ws.store.run_metrics([run_id])
            expected = {f"Recall@{k} {g}": stored[(stored["subset"] == g) & (stored["name"] == f"full:Recall@{k}")]
                        ["value"].iloc[0] for g in ("warm", "cold") for k in (10, 50)}  # fmt: skip
        for column, value in expected.items():
            assert float(shown.loc[label, column]) == pytest.approx(value, abs=5e-5), (label, column)
        n_cold = int(cold.sum())
        for k in (10, 50):  # the groups add up to the whole (user-weighted)
            mixed = float(shown.loc[label, f"Recall@{k} warm"]) * (len(cold) - n_cold)
            mixed += float(shown.loc[label, f"Recall@{k} cold"]) * n_cold
            assert mixed / len(cold) == pytest.approx(float(shown.loc[label, f"Recall@{k}"]), abs=3e-4), label


def test_results_md_holds_what_the_report_writes_from_the_bundled_state(bundled) -> None:
    _, _, md = bundled
    text = RESULTS.read_text(encoding="utf-8")
    kept = text.split("<!-- BEGIN mmrec report sample -->", 1)[1].split("<!-- END mmrec report sample -->", 1)[0]

    def tables(s: str) -> list[str]:
        return [line for line in s.splitlines() if line.startswith("|")]

    assert tables(kept) == tables(md), "regenerate it: python scripts/update_results.py sample"


def test_the_cli_writes_markdown_beside_the_html(tmp_path: Path) -> None:
    ws = open_workspace(load_settings(tmp_path / "data"))
    ensure_sample_dataset(ws, with_results=True)
    ws.close()  # the CLI opens the folder itself (one writer per DuckDB file)
    out = tmp_path / "report.html"
    assert main(["--data-dir", str(tmp_path / "data"), "report", "sample", "--markdown", "--out", str(out)]) == 0
    written = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "`mmrec report sample --markdown`" in written and "### Leaderboard" in written
    assert out.is_file()


def test_a_subset_run_is_shown_beside_every_full_run_on_the_same_users(bundled) -> None:
    """The bundle's listwise run scored 30 seeded users: every full run is re-read on exactly those users."""
    from mmrec_core.evaluate.leaderboard import paired_values, user_metrics

    ws, _, md = bundled
    apart = section(md, "Runs not ranked here")
    subset_run = apart.loc[apart["run"] == "llm-listwise zero-shot", "eval run"].iloc[0]
    users = user_metrics(ws, subset_run).index
    table = section(md, f"On the {len(users)} users of llm-listwise zero-shot")
    board = section(md, "Leaderboard")
    assert set(table["eval run"]) == {f"`{subset_run}`", *board["eval run"]}
    assert set(table["users"]) == {str(len(users))}
    base_col = next(c for c in table.columns if c.startswith("NDCG@5 vs "))
    base_run = board.loc[board["run"] == base_col.removeprefix("NDCG@5 vs "), "eval run"].iloc[0].strip("`")
    for row in table.to_dict("records"):
        run_id = row["eval run"].strip("`")
        per_user = user_metrics(ws, run_id).loc[users]
        assert float(row["NDCG@5"].split()[0]) == pytest.approx(per_user["NDCG@5"].mean(), abs=5e-4)
        if run_id != base_run:
            base = user_metrics(ws, base_run).loc[users, "NDCG@5"]
            assert row[base_col].split()[0] == f"{paired_values(per_user['NDCG@5'], base, 'NDCG@5').diff:+.4f}"
