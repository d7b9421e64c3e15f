"""`mmrec textualize | eval-descriptions`: stage 1, item descriptions and keywords."""

from __future__ import annotations

import argparse
from functools import partial

from mmrec_core.cli.progress import with_progress
from mmrec_core.core.options import add_arguments, build
from mmrec_core.scale.jobs import ScaleConfig
from mmrec_core.store.workspace import Workspace
from mmrec_core.textualize.build import TextualizeConfig
from mmrec_core.textualize.quality import DESCRIBERS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("textualize", help="descriptions, keywords and rewards for every item (skips unchanged ones)")
    p.add_argument("dataset")
    p.add_argument("--items", nargs="+", help="only these item ids")
    add_arguments(p, {"textualize": TextualizeConfig})
    add_arguments(p, {"scale": ScaleConfig})
    p.set_defaults(run=cmd_textualize)

    p = sub.add_parser(
        "eval-descriptions",
        help="describers on held-out H&M articles (detail_desc withheld): unsupported claims, similarity, accuracy",
    )
    p.add_argument("dataset")
    p.add_argument("-n", type=int, default=200, help="held-out articles to describe (default 200 seeded; 0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the article sample (default 0)")
    p.add_argument(
        "--describers",
        nargs="+",
        choices=DESCRIBERS,
        help="builtin describers to compare (default: all; the tuned ones where the describer adapter is there)",
    )
    p.set_defaults(run=cmd_eval_descriptions)

    p = sub.add_parser(
        "train-attributes", help="train the image classifier for product type, pattern and colour (H&M labels)"
    )
    p.add_argument("dataset")
    p.add_argument("--out", help="model file to write (default <data dir>/artifacts/attributes-<dataset>.npz)")
    p.set_defaults(run=cmd_train_attributes)


def cmd_textualize(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.engines import get_engine
    from mmrec_core.textualize.build import textualize

    config, scale = build(TextualizeConfig, vars(args)), build(ScaleConfig, vars(args))
    engine = get_engine(ws.settings)
    if scale.backend == "ray":
        from mmrec_core.scale.textualize import textualize_on_ray

        run = partial(textualize_on_ray, scale=scale)
    else:
        run = textualize
    report = with_progress("item", lambda p: run(ws, engine, args.dataset, args.items, config, progress=p))
    print(f"{args.dataset}: {report}")
    for item_id, reason in report.failed:
        print(f"  skipped {item_id}: {reason}")


def cmd_eval_descriptions(ws: Workspace, args: argparse.Namespace) -> None:
    from mmrec_core.engines import get_engine
    from mmrec_core.textualize.quality import evaluate_descriptions

    engine = get_engine(ws.settings)
    report = with_progress(
        "item",
        lambda p: evaluate_descriptions(
            ws, engine, args.dataset, n=args.n, seed=args.seed, describers=tuple(args.describers or ()), progress=p
        ),
    )
    number = lambda x: f"{x:.3f}"  # noqa: E731
    print(f"{args.dataset}: {report.items} held-out articles ({report.split_id}), detail_desc withheld")
    print("\nDescriptions (image + catalog fields but detail_desc):")
    print(report.describers.to_string(index=False, float_format=number))
    print(f"\nFrom the image alone ({engine.model_names()['vlm']}):")
    print(report.image.to_string(index=False, float_format=number))


def cmd_train_attributes(ws: Workspace, args: argparse.Namespace) -> None:
    from pathlib import Path

    from mmrec_core.textualize.attributes import default_model_path, train_attribute_model

    model, report = with_progress("image", lambda p: train_attribute_model(ws, args.dataset, progress=p))
    out = Path(args.out) if args.out else default_model_path(ws, args.dataset)
    model.save(out)
    prov = model.provenance
    print(f"{args.dataset}: trained on {prov['fit articles']} articles (+{prov['valid articles']} to tune C and the "
          f"temperature) of {prov['split_id']}; scored on {prov['test articles']} held-out articles:")  # fmt: skip
    print(report.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"written to {out}; to describe with it, set the engine setting attribute_model={out} (sidebar, or "
          f"MMREC_ATTRIBUTE_MODEL)")  # fmt: skip
