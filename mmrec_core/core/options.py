"""Settings as options: the `*Config` dataclasses are the one place a default lives.

Every field of a config (nested configs flattened) becomes an `Option`: its flag name (the field
name with dashes, or `metadata["flag"]`), type, default and `metadata["help"]`. The CLI adds one
argparse flag per option (`add_arguments`), the app draws one widget per option (`widgets.py`), and
both build the config back with `build`, so `mmrec train sft` and the Train page start from the
same values. Field metadata understood here:

- `help`: the flag's and the widget's help text;
- `flag`: the option's name when it differs from the field's (`n_negatives` -> `negatives`); two
  fields with one flag name (a run's `seed` and its data's `seed`) are set together;
- `choices`: the allowed values; `range`: (low, high, step) for a form widget;
- `cli: False`: not an option (derived or internal fields); on a nested config, `hide`: the names of
  its fields that do not apply here (GRPO's prompts have no task mix).

A field typed `dict[str, float]` reads `a=1,b=2` on the command line (a task mix, say).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    name: str  # flag name without dashes: "min-count", "k"
    paths: tuple[tuple[str, ...], ...]  # the field paths it sets: (("seed",), ("data", "seed"))
    kind: type  # int, float, str, bool, dict or list
    default: Any
    help: str
    choices: tuple | None = None
    range: tuple | None = None  # (low, high, step) for form widgets

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def flag(self) -> str:
        return f"-{self.name}" if len(self.name) == 1 else f"--{self.name}"


def _kind(annotation: Any) -> type:
    """The plain type of a field annotation (`int | None` -> int, `dict[str, float]` -> dict)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _kind(args[0])
    return origin or annotation


def options(config: type | object) -> list[Option]:
    """The options of a config class (or instance: its values are the defaults), nested configs flattened."""
    instance = config() if isinstance(config, type) else config
    found: dict[str, Option] = {}
    for path, f, annotation, value in _leaves(instance, ()):
        if f.metadata.get("cli", True) is False:
            continue
        name = f.metadata.get("flag", f.name.replace("_", "-"))
        if name in found:  # one flag setting several fields: they must agree on type and default
            known = found[name]
            found[name] = dataclasses.replace(known, paths=(*known.paths, path))
            continue
        found[name] = Option(
            name=name,
            paths=(path,),
            kind=_kind(annotation),
            default=value,
            help=f.metadata.get("help", ""),
            choices=tuple(f.metadata["choices"]) if "choices" in f.metadata else None,
            range=tuple(f.metadata["range"]) if "range" in f.metadata else None,
        )
    return list(found.values())


def _leaves(instance: object, prefix: tuple[str, ...], hidden: tuple[str, ...] = ()):
    """(path, field, resolved annotation, value) of every leaf field; nested configs are walked into."""
    hints = typing.get_type_hints(type(instance))  # resolves `from __future__ import annotations` strings
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if f.name in hidden:
            continue
        if dataclasses.is_dataclass(value) and f.metadata.get("cli", True) is not False:
            yield from _leaves(value, (*prefix, f.name), tuple(f.metadata.get("hide", ())))
        else:
            yield (*prefix, f.name), f, hints[f.name], value


def defaults(config: type | object) -> dict[str, Any]:
    """Option name -> default value (what a form shows first, what the CLI uses when a flag is absent)."""
    return {o.name: o.default for o in options(config)}


def parse_mapping(text: str, name: str) -> dict[str, float]:
    """`a=0.7,b=0.3` -> {"a": 0.7, "b": 0.3} (a dict option given on the command line)."""
    out = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--{name}: '{part}' is not key=number (e.g. a=0.7,b=0.3).") from None
    return out


def add_arguments(parser: argparse.ArgumentParser, configs: Mapping[str, type], skip: Iterable[str] = ()) -> None:
    """One flag per option of `configs` ({label: config class}); flags shared by several configs are added once.

    Flags default to None (not given), so `build` keeps each config's own default; the help names
    the default of every config that has the option (`(default: sft 2000, grpo 64)`).
    """
    merged: dict[str, list[tuple[str, Option]]] = {}
    for label, config in configs.items():
        for o in options(config):
            if o.name not in skip:
                merged.setdefault(o.name, []).append((label, o))
    for found in merged.values():
        first = found[0][1]
        kinds = {o.kind for _, o in found}
        values = {repr(o.default) for _, o in found}
        if len(found) == 1 or len(values) == 1:
            shown = f"default: {_show(first.default)}"
        else:
            shown = "default: " + ", ".join(f"{label} {_show(o.default)}" for label, o in found)
        text = f"{first.help} ({shown})" if first.help else f"({shown})"
        if len(configs) > 1 and len(found) < len(configs):
            text = f"{'/'.join(label for label, _ in found)}: {text}"
        text = text.replace("%", "%%")
        if kinds == {bool}:  # --x / --no-x: a field that defaults to True can be turned off too
            parser.add_argument(
                first.flag, dest=first.dest, action=argparse.BooleanOptionalAction, default=None, help=text
            )
            continue
        kind = float if float in kinds else first.kind
        convert = str if kind in (dict, list) else kind
        choices = first.choices if all(o.choices == first.choices for _, o in found) else None
        parser.add_argument(first.flag, dest=first.dest, type=convert, choices=choices, default=None, help=text)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
    return "none" if value is None or value == "" else str(value)


def build(config: type | object, values: Mapping[str, Any]) -> Any:
    """A config with the given option values (by name or dest; None = not given, keep the default)."""
    instance = config() if isinstance(config, type) else config
    given = {k.replace("_", "-"): v for k, v in values.items() if v is not None}
    for o in options(instance):
        if o.name not in given:
            continue
        value = _convert(o, given[o.name])
        for path in o.paths:
            instance = _set(instance, path, value)
    return instance


def _convert(o: Option, value: Any) -> Any:
    if o.kind is dict and isinstance(value, str):
        return parse_mapping(value, o.name)
    if o.kind is int and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"--{o.name} must be a whole number, not {value:g}.")
        return int(value)
    if o.kind is list and isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _set(instance: Any, path: tuple[str, ...], value: Any) -> Any:
    """A copy of `instance` with the field at `path` replaced (nested configs copied too, validated again)."""
    head, *rest = path
    new = value if not rest else _set(getattr(instance, head), tuple(rest), value)
    return dataclasses.replace(instance, **{head: new})
