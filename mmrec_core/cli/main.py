"""`mmrec`: every pipeline stage from the command line (the app calls the same functions).

    mmrec ingest hm ../shared/datasets/hm        load a data set (one transaction, idempotent)
    mmrec info [DATASET]                         statistics of one or all data sets
    mmrec protocol DATASET --negatives 50        another leave-one-out protocol (negatives stored)
    mmrec export sample DIR                      a data set and all its results as Parquet + manifest
    mmrec import DIR                             load an export (hashes checked, one transaction)
    mmrec pipeline sample                        every stage in order, skipping what is up to date
    mmrec engine --check                         the engine settings; load each model and time it
    mmrec textualize sample                      describe, summarise and score every item (resumable)
    mmrec eval-descriptions hm -n 200            attribute accuracy of the describer from images alone
    mmrec profiles sample                        recurrent preference summaries per user (resumable)
    mmrec eval-profiles sample                   how specific and distinct the profiles are
    mmrec graph hm --alpha 0.5 -k 10             the refined item graph (semantic + co-occurrence edges)
    mmrec train sasrec hm                        train a model on the protocol's training data
    mmrec eval sasrec hm                         HR/NDCG/AUC on stored candidates + full ranking
    mmrec similar-users hm USER                  k most similar users (SASRec) and what they bought next
    mmrec similar-users hm --quality             how often their next item is the customer's own (valid part)
    mmrec score sample USER                      the LLM's ranked candidates with rationale and evidence
    mmrec explain sample USER ITEM               what moves the LLM's score: each context piece left out
    mmrec card sample USER                       a self-contained HTML card of a customer's recommendations
    mmrec eval-rationales sample                 do rationales cite what moves the score (zero-shot, adapters)
    mmrec eval llm sample --mode listwise        the LLM recommender on the stored test candidates
    mmrec eval --all sample                      every available model, then the leaderboard with intervals
    mmrec compare RUN_A RUN_B                    two eval runs user by user (paired interval and test)
    mmrec report sample                          a self-contained HTML report of the data set's runs
    mmrec train sft sample --steps 200           LoRA SFT of the LLM on the task mix (resumable)
    mmrec train grpo sample --from-adapter DIR   GRPO on the listwise task with guarded rewards
    mmrec train keywords sample                  RLVR of the keyword summarizer (R_info + R_recon + R_len)

The data folder comes from MMREC_DATA_DIR (default ./mmrec_data) or --data-dir. Every option's
default is its config dataclass's (shown in each command's --help).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mmrec_core.cli import data, evaluate, explain, graph, pipeline, profiles, recommend, textualize, train
from mmrec_core.config import load_settings
from mmrec_core.data.ingest import IngestError
from mmrec_core.engines.assets import MissingModelError
from mmrec_core.scale.jobs import MissingExtraError
from mmrec_core.store import StoreError
from mmrec_core.store.images import BadImageError
from mmrec_core.store.workspace import open_workspace

# Command groups in pipeline order; each registers its commands (`register(sub)`) with a `run` handler.
GROUPS = (data, pipeline, textualize, profiles, graph, train, evaluate, recommend, explain)

# Commands that only read the database: opened without the write lock where DuckDB allows it.
READ_ONLY_COMMANDS = frozenset({"info"})

# Errors that are the user's to fix: printed as one line, exit status 2, no traceback.
USER_ERRORS = (
    IngestError,
    StoreError,
    BadImageError,
    KeyError,
    ValueError,
    FileNotFoundError,
    MissingModelError,
    MissingExtraError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmrec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="data folder (default: $MMREC_DATA_DIR or ./mmrec_data)")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def folder_origin(args: argparse.Namespace) -> str | None:
    """How the data folder was chosen (what a lock message should tell the user to change)."""
    if args.data_dir:
        return "--data-dir"
    return "MMREC_DATA_DIR" if os.environ.get("MMREC_DATA_DIR") else None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ws = open_workspace(
            load_settings(args.data_dir), read_only=args.command in READ_ONLY_COMMANDS, origin=folder_origin(args)
        )
        try:
            args.run(ws, args)
        finally:
            ws.close()
    except USER_ERRORS as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"mmrec {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
