"""Options from config dataclasses (`core.options`): one table of hand-made configs drives the flag, widget
and build rules; then every command's defaults are checked against its config's."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

import pytest

from mmrec_core.cli.evaluate import eval_config
from mmrec_core.cli.main import build_parser
from mmrec_core.cli.train import given_options
from mmrec_core.core.options import add_arguments, build, defaults, options
from mmrec_core.data.splits import ProtocolConfig
from mmrec_core.finetune.runs import TRAINERS, train_config
from mmrec_core.graph.edges import GraphConfig
from mmrec_core.models.registry import MODELS
from mmrec_core.profiles.build import ProfileConfig
from mmrec_core.profiles.quality import ProfileEvalConfig
from mmrec_core.recommend.llm import RecommendConfig
from mmrec_core.textualize.build import TextualizeConfig


@dataclass
class Inner:
    n_examples: int = field(default=10, metadata={"help": "How many.", "flag": "examples"})
    mix: dict[str, float] = field(default_factory=lambda: {"a": 0.5, "b": 0.5}, metadata={"help": "Mix."})
    seed: int = field(default=0, metadata={"help": "Inner seed."})


@dataclass
class Outer:
    data: Inner = field(default_factory=Inner)
    rate: float = field(default=1e-3, metadata={"help": "Rate.", "flag": "lr"})
    steps: int = field(default=-1, metadata={"help": "Steps."})
    fast: bool = field(default=False, metadata={"help": "Go fast."})
    mode: str = field(default="x", metadata={"help": "Mode.", "choices": ("x", "y")})
    seed: int = field(default=0, metadata={"help": "Run seed."})
    derived: int = field(default=3, metadata={"cli": False})


@dataclass
class Hiding:
    data: Inner = field(default_factory=lambda: Inner(n_examples=4), metadata={"hide": ("mix",)})


# (argv after the command, option values the config must end up with at these paths)
CASES = [
    ([], {("data", "n_examples"): 10, ("rate",): 1e-3, ("steps",): -1, ("fast",): False}),
    (["--examples", "7", "--lr", "0.5"], {("data", "n_examples"): 7, ("rate",): 0.5}),
    (["--seed", "9"], {("seed",): 9, ("data", "seed"): 9}),  # one flag, both seeds
    (["--mix", "a=0.2,b=0.8"], {("data", "mix"): {"a": 0.2, "b": 0.8}}),
    (["--fast", "--mode", "y", "--steps", "12"], {("fast",): True, ("mode",): "y", ("steps",): 12}),
]


def _get(config, path):
    for name in path:
        config = getattr(config, name)
    return config


@pytest.mark.parametrize("argv, expected", CASES)
def test_flags_build_the_config(argv: list[str], expected: dict) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, {"outer": Outer})
    config = build(Outer, vars(parser.parse_args(argv)))
    for path, value in expected.items():
        assert _get(config, path) == value, path
    assert config.derived == 3


def test_options_flatten_rename_merge_and_hide() -> None:
    names = [o.name for o in options(Outer)]
    assert names == ["examples", "mix", "seed", "lr", "steps", "fast", "mode"]  # derived is not an option
    seed = next(o for o in options(Outer) if o.name == "seed")
    assert seed.paths == (("data", "seed"), ("seed",))
    assert defaults(Hiding) == {"examples": 4, "seed": 0}  # the instance's values, `mix` hidden


def test_help_names_each_configs_default_and_bad_values_are_refused() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, {"outer": Outer, "hiding": Hiding})
    text = parser.format_help()
    assert "default: outer 10, hiding 4" in " ".join(text.split())
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "z"])
    with pytest.raises(ValueError, match="whole number"):
        build(GraphConfig, {"k": 2.5})
    with pytest.raises(ValueError, match="key=number"):
        build(Outer, {"mix": "a=lots"})


def test_llm_trainer_options_refuse_other_methods_and_derive_lora_alpha() -> None:
    assert train_config("sft", lora_r=16).lora_alpha == 32
    assert train_config("sft", lora_r=16, lora_alpha=8).lora_alpha == 8
    with pytest.raises(ValueError, match="--reward"):
        train_config("sft", reward="rank")
    args = build_parser().parse_args(["train", "sasrec", "sample", "--generations", "8"])
    with pytest.raises(ValueError, match="sasrec has no setting --generations"):
        given_options(args, "sasrec")


def _cli(argv: list[str]) -> dict:
    return vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("method", sorted(TRAINERS))
def test_cli_trains_its_configs_default(method: str) -> None:
    args = build_parser().parse_args(["train", method, "sample"])
    assert train_config(method, **given_options(args, method)) == TRAINERS[method]()


@pytest.mark.parametrize("method", [m for m in MODELS if defaults(MODELS[m][1])])
def test_cli_trains_each_models_default_and_its_flags(method: str) -> None:
    config_type = MODELS[method][1]
    args = build_parser().parse_args(["train", method, "sample"])
    assert build(config_type, given_options(args, method)) == config_type()
    args = build_parser().parse_args(["train", method, "sample", "--epochs", "3", "--seed", "5"])
    assert build(config_type, given_options(args, method)) == dataclasses.replace(config_type(), epochs=3, seed=5)


@pytest.mark.parametrize(
    "argv, config_type",
    [
        (["graph", "sample"], GraphConfig),
        (["score", "sample", "u"], RecommendConfig),
        (["textualize", "sample"], TextualizeConfig),
        (["profiles", "sample"], ProfileConfig),
        (["eval-profiles", "sample"], ProfileEvalConfig),
        (["ingest", "hm", "somewhere"], ProtocolConfig),
        (["protocol", "sample"], ProtocolConfig),
    ],
)
def test_every_command_starts_from_its_configs_defaults(argv: list[str], config_type: type) -> None:
    assert build(config_type, _cli(argv)) == config_type()


def test_eval_uses_the_recommender_defaults_without_rationales() -> None:
    args = build_parser().parse_args(["eval", "llm", "sample"])
    assert eval_config(args) == dataclasses.replace(RecommendConfig(), explain_top=0)
    args = build_parser().parse_args(["eval", "llm", "sample", "--history", "2", "--mode", "listwise"])
    assert eval_config(args) == RecommendConfig(mode="listwise", n_history=2, explain_top=0)
