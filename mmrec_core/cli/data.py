"""`mmrec ingest | info | protocol | sample | export | import | gc | engine`: data sets, protocols, Parquet exports,
image-folder clean-up and the engine settings."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mmrec_core.config import ENGINE_FIELDS
from mmrec_core.core.options import add_arguments, build
from mmrec_core.data.ingest import READERS, ensure_sample_dataset, ingest
from mmrec_core.data.splits import ProtocolConfig, create_protocol, repeat_share
from mmrec_core.data.stats import dataset_summary
from mmrec_core.store.gc import DEFAULT_MIN_AGE_S, collect_garbage
from mmrec_core.store.workspace import Workspace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="load a data set into the store")
    p.add_argument("format", choices=sorted(READERS), help="source layout")
    p.add_argument("path", help="folder (or file, for some formats) to read")
    p.add_argument("--name", help="data set name (default: the format, or the folder name)")
    p.add_argument("--replace", action="store_true", help="overwrite a data set of the same name whose content differs")
    add_arguments(p, {"protocol": ProtocolConfig})
    p.set_defaults(run=cmd_ingest)

    p = sub.add_parser("info", help="statistics of the stored data sets")
    p.add_argument("dataset", nargs="?", help="one data set (default: all)")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("protocol", help="create another evaluation protocol for a data set")
    p.add_argument("dataset")
    add_arguments(p, {"protocol": ProtocolConfig})
    p.set_defaults(run=cmd_protocol)

    p = sub.add_parser("sample", help="load the bundled sample data set (as the app does on first start)")
    p.add_argument("--results", action=argparse.BooleanOptionalAction, default=True,
                   help="also import its precomputed results (sample_data/state) where they are bundled")  # fmt: skip
    p.set_defaults(run=cmd_sample)

    p = sub.add_parser("export", help="a data set and everything derived from it as Parquet files + manifest")
    p.add_argument("dataset")
    p.add_argument("folder", help="new (or empty) folder to write")
    p.add_argument("--images", action=argparse.BooleanOptionalAction, default=True,
                   help="copy the image files (without them, import needs the data set ingested first)")  # fmt: skip
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("import", help="load an export folder (checked against its manifest; one transaction)")
    p.add_argument("folder", help="a folder written by `mmrec export`")
    p.set_defaults(run=cmd_import)

    p = sub.add_parser("gc", help="delete image files no stored row references and stale .part temp files")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    p.add_argument("--min-age", type=float, default=DEFAULT_MIN_AGE_S / 60, metavar="MINUTES",
                   help="keep files younger than this (a write may be in flight); 0 after a killed ingest")  # fmt: skip
    p.set_defaults(run=cmd_gc)

    p = sub.add_parser("engine", help="show the engine settings (and with --check, load and try each model)")
    p.add_argument("--check", action="store_true", help="load the LLM and the embedder, generate and score once")
    p.set_defaults(run=cmd_engine)


def cmd_ingest(ws: Workspace, args: argparse.Namespace) -> None:
    protocol = build(ProtocolConfig, vars(args))
    report = ingest(
        ws.store,
        ws.images,
        args.format,
        args.path,
        name=args.name,
        replace=args.replace,
        n_negatives=protocol.n_negatives,
        seed=protocol.seed,
        min_history=protocol.min_history,
    )
    print(report)


def cmd_info(ws: Workspace, args: argparse.Namespace) -> None:
    names = [args.dataset] if args.dataset else list(ws.store.datasets()["dataset"])
    if not names:
        print("No data sets yet. Load one with `mmrec ingest FORMAT PATH` or `mmrec sample`.")
    for name in names:
        print(format_summary(dataset_summary(ws.store, name)))


def format_summary(s: dict) -> str:
    lines = [
        f"== {s['dataset']} ({s['format']}, from {s['source']})",
        f"   users {s['users']:,}  items {s['items']:,} ({s['items_with_images']:,} with images)  "
        f"interactions {s['interactions']:,} (source rows {s['source_rows']:,})  density {s['density']:.4%}",
        f"   sequence length min {s['seq_len_min']}  median {s['seq_len_median']:g}  "
        f"mean {s['seq_len_mean']:g}  max {s['seq_len_max']}",
    ]
    if s["first_ts"] is not None and str(s["first_ts"]) != "NaT":
        lines.append(f"   time span {s['first_ts']:%Y-%m-%d} .. {s['last_ts']:%Y-%m-%d}")
    for p in s["protocols"]:
        share, cold = p["test_repeat_share"] or 0.0, p["test_cold_share"] or 0.0
        lines.append(
            f"   protocol {p['protocol_id']}: {p['evaluated_users']:,} evaluated users, "
            f"1 positive + {p['n_negatives']} negatives, {share:.1%} of test targets are repeats, "
            f"{cold:.1%} cold (never in training)"
        )
    return "\n".join(lines)


def cmd_protocol(ws: Workspace, args: argparse.Namespace) -> None:
    c = build(ProtocolConfig, vars(args))
    pid = create_protocol(ws.store, args.dataset, n_negatives=c.n_negatives, seed=c.seed, min_history=c.min_history)
    print(f"{pid}: stored; {repeat_share(ws.store, pid):.1%} of test targets are repeats")


def cmd_sample(ws: Workspace, args: argparse.Namespace) -> None:
    report = ensure_sample_dataset(ws, with_results=args.results)
    print(report or "sample: already loaded")


def cmd_export(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.store.exchange import export_dataset

    start = time.perf_counter()
    manifest = export_dataset(ws.store, ws.images, args.dataset, Path(args.folder), with_images=args.images)
    rows = ", ".join(f"{t} {n:,}" for t, n in manifest["rows"].items() if n)
    print(f"{args.dataset}: exported to {args.folder} in {time.perf_counter() - start:.1f} s ({rows}; images "
          f"{manifest['images']}); read it back with `mmrec import {args.folder}`")  # fmt: skip


def cmd_import(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.store.exchange import import_dataset

    start = time.perf_counter()
    manifest = import_dataset(ws.store, ws.images, Path(args.folder), ws.settings.data_dir / "runs")
    print(f"{manifest['dataset']}: imported from {args.folder} in {time.perf_counter() - start:.1f} s "
          f"(exported {manifest['exported_at']} by mmrec {manifest['code_version']}); it replaced any stored "
          f"'{manifest['dataset']}'")  # fmt: skip


def cmd_gc(ws: Workspace, args: argparse.Namespace) -> None:
    report = collect_garbage(ws, dry_run=args.dry_run, min_age_s=args.min_age * 60)
    for path in report.removed:
        print(f"{'would remove' if args.dry_run else 'removed'} {path}")
    print(f"{ws.images.root}: {report}")


def cmd_engine(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.engines import GenerationOptions, get_engine

    settings = ws.settings
    for name in ENGINE_FIELDS:
        print(f"{name:>16}: {getattr(settings, name)!s}")
    engine = get_engine(settings)
    for task, model in engine.model_names().items():
        print(f"{task + ' model':>16}: {model or '-'}")
    if not args.check:
        return
    start = time.perf_counter()
    lm = engine.lm
    print(f"loaded the LLM in {time.perf_counter() - start:.1f} s ({lm.model.device})")
    start = time.perf_counter()
    engine.embed(["warm-up"])
    print(f"loaded the embedder in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    answer = engine.generate(["Name one colour."], GenerationOptions(max_new_tokens=8))[0]
    score = engine.score_yes_no("Is the sky blue? ", ["Answer Yes or No."])[0]
    print(f"generate + score in {time.perf_counter() - start:.1f} s: {answer!r}, p(yes)={score:.3f}")
