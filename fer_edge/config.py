"""Config machinery shared by every stage: frozen dataclass <-> argparse <-> TOML <-> JSON.

Light tier (the standard library and fer_edge.errors only): no stage's settings live here.
Each stage owns one frozen dataclass in its own module (``TrainConfig`` in
``fer_edge/train/config.py``, ``ConvertConfig`` in ``fer_edge/convert/config.py``, ...);
options several stages take are defined once in ``fer_edge/options.py``. A config's defaults
are the only defaults. Field metadata ``help`` becomes the flag's help; ``choices`` its
choices; flags are the field names in kebab-case. ``--config FILE.toml`` sets defaults;
explicit flags override it. Fields declared ``one_of="NAME"`` are alternatives (e.g. the
sources of ``fer-edge enroll``): their flags form one mutually exclusive group, and such a flag
replaces whichever of them the TOML file gave.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import os
import typing
from dataclasses import field
from pathlib import Path
from typing import Any

import tomllib

from fer_edge.errors import ConfigError


def opt(default: Any, help: str, choices: tuple | None = None, positional: bool = False,
        cli: bool = True, *, ge: float | None = None, gt: float | None = None,
        le: float | None = None, lt: float | None = None, many: bool = False,
        one_of: str = "", metavar: str = "") -> Any:
    """A config field with CLI help and its allowed values.

    :func:`check_config` checks every field wherever a config is built (flags, TOML, a resumed
    run's saved config): its type; for numbers, finite and within ``ge``/``gt`` (lower) and
    ``le``/``lt`` (upper), and ``>= 0`` when no bound is given (``>= default`` for a negative
    default such as -1 = auto; ``ge=-math.inf`` allows any sign); ``choices`` for values from
    TOML too. ``many``: a text field that also takes several values (the flag takes one or
    more, e.g. a shell glob; TOML a string or a list of strings; a positional one takes any
    number). A default of None (type ``int | None``) means "not set": None passes the checks.
    ``one_of``: the name of a set of alternative fields (their flags are mutually exclusive;
    see :func:`given_values`). ``metavar``: the flag's value placeholder in the help (default
    N, X or S by type).
    """
    meta = {"help": help, "choices": choices, "positional": positional, "cli": cli,
            "ge": ge, "gt": gt, "le": le, "lt": lt, "many": many, "one_of": one_of,
            "metavar": metavar}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def add_config_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per field of the dataclass ``cls`` (plus ``--config``).

    Every flag defaults to None ("not given"), so :func:`config_from_args` can put a flag over
    the TOML file and the TOML file over the dataclass default. A config class with
    ``CHECK_AT_PARSE = True`` also has argparse check each number flag's type and range as it
    is parsed (``argument --limit: -3 is out of range; use a number >= 0``); the others are
    checked by :func:`check_config` (``--limit -3: out of range; ...``), like TOML values.
    """
    hints = typing.get_type_hints(cls)
    at_parse = bool(getattr(cls, "CHECK_AT_PARSE", False))
    groups: dict[str, Any] = {}  # one_of name -> its mutually exclusive group
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        tp = hints[f.name]
        kw: dict[str, Any] = {"help": _help_text(f), "dest": f.name}
        if f.metadata.get("choices"):
            kw["choices"] = f.metadata["choices"]
        if f.metadata.get("positional"):
            kw.pop("dest")
            parser.add_argument(f.name, type=_base_type(tp), default=None,
                                nargs="*" if f.metadata.get("many") else "?", **kw)
            continue
        flag = flag_name(f.name)
        group = f.metadata.get("one_of")
        if group and group not in groups:
            groups[group] = parser.add_mutually_exclusive_group()
        where = groups[group] if group else parser
        metavar = f.metadata.get("metavar") or _metavar(tp)
        if f.metadata.get("many"):
            where.add_argument(flag, nargs="+", default=None, metavar=metavar, **kw)
        elif tp is bool:
            where.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, **kw)
        else:
            kind = _flag_type(f, tp) if at_parse else _base_type(tp)
            where.add_argument(flag, type=kind, default=None, metavar=metavar, **kw)
    if not any(a.dest == "config_file" for a in parser._actions):
        parser.add_argument("--config", dest="config_file", default=None, metavar="FILE.toml",
                            help="read defaults from a TOML file (flags override it)")


def add_config_parser(sub, name: str, cls: type, help: str,
                      description: str) -> argparse.ArgumentParser:
    """A subcommand whose flags are the fields of the stage config ``cls``."""
    p = sub.add_parser(name, help=help, description=description)
    add_config_args(p, cls)
    return p


def _help_text(f: dataclasses.Field) -> str:
    """The field's help with its default once: "(default: X)" is added unless the default is
    empty/None or the help already says "(default ..."."""
    default = f.default if f.default is not dataclasses.MISSING else None
    text = f.metadata.get("help", "")
    quiet = default in ("", None) or "(default" in text.lower()
    return text + ("" if quiet else f" (default: {default})")


def _flag_type(f: dataclasses.Field, tp: Any) -> Any:
    """argparse ``type=`` of a number field checked as it is parsed (:func:`number` with the
    field's bounds); other types as they are."""
    kind = _base_type(tp)
    if kind not in (int, float):
        return kind
    pairs, _ = _bounds(f.metadata, f.default)
    return number(kind, **{"ge": None, **dict(pairs)})


def _base_type(tp: Any) -> Any:
    if tp in (int, float, str):
        return tp
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args and args[0] in (int, float, str):
        return args[0]
    return str


def _metavar(tp: Any) -> str:
    return {int: "N", float: "X", str: "S"}.get(_base_type(tp), "S")


def config_from_args(cls: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """Build the stage config: dataclass defaults < TOML file < explicit flags < ``fixed``.

    Every value is checked (:func:`check_config`); a bad one raises
    :class:`~fer_edge.errors.ConfigError` naming the flag or TOML key and what to give.
    """
    values, origin = given_values(cls, args)
    values.update(fixed)
    return make_config(cls, values, origin)


def given_values(cls: type, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """The values the user gave (TOML file, then explicit flags over it) and where each came
    from (``--batch-size`` or ``recipe.toml: batch_size =``), without the defaults.

    A flag of a ``one_of`` set of fields replaces the TOML file's value of every field of the
    set (``--video F`` over a recipe's ``images = "DIR"``: the flag's source, not both).
    """
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if getattr(args, "config_file", None):
        for k, v in read_toml(args.config_file, cls).items():
            values[k], origin[k] = v, f"{args.config_file}: {k} ="
    fields = dataclasses.fields(cls)
    for f in fields:
        v = getattr(args, f.name, None)
        if v is None or v == []:  # [] = a positional taking any number, given none
            continue
        group = f.metadata.get("one_of")
        for other in (g for g in fields if group and g.metadata.get("one_of") == group):
            values.pop(other.name, None)
            origin.pop(other.name, None)
        values[f.name], origin[f.name] = v, flag_name(f.name)
    return values, origin


def make_config(cls: type, values: dict[str, Any], origin: dict[str, str] | None = None) -> Any:
    """``cls(**values)`` with every field checked (:func:`check_config`); ``origin`` names
    where each value came from, for the error message."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}")
    try:
        cfg = cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from None
    check_config(cfg, origin or {})
    return cfg


def flag_name(name: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


_OPS = {">=": lambda v, b: v >= b, ">": lambda v, b: v > b, "<=": lambda v, b: v <= b,
        "<": lambda v, b: v < b}

_TYPE_WORDS = {int: "a whole number", float: "a number", str: "text (a quoted string in TOML)",
               bool: "true or false"}


def _field_type(tp: Any) -> type:
    return bool if tp is bool else _base_type(tp)


def _type_ok(v: Any, tp: type) -> bool:
    if tp is bool:
        return isinstance(v, bool)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if tp is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if tp is str:
        return isinstance(v, str)
    return True


def _several_texts(v: Any, meta: dict) -> bool:
    """Several values of a text field that takes them (``opt(..., many=True)``): a non-empty
    list of strings."""
    return bool(meta.get("many")) and isinstance(v, (list, tuple)) and bool(v) and all(
        isinstance(x, str) for x in v)


def _bounds(meta: dict, default: Any = 0) -> tuple[list[tuple[str, float]], str]:
    pairs = [(k, meta[k]) for k in ("ge", "gt", "le", "lt") if meta.get(k) is not None]
    if not pairs:  # no bound given: >= 0, or >= the default when that is negative (-1 = auto)
        low = default if isinstance(default, (int, float)) and default < 0 else 0
        pairs = [("ge", low)]
    sym = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    text = " and ".join(f"{sym[k]} {b:g}" for k, b in pairs if math.isfinite(b))
    return pairs, text


def check_config(cfg: Any, origin: dict[str, str] | None = None) -> None:
    """Check every field of a stage config: type, finite numbers in range, choices.

    Raises:
        ConfigError: one line naming the flag (or TOML key), the value and what to give.
    """
    origin = origin or {}
    hints = typing.get_type_hints(type(cfg))
    ops = {"ge": lambda v, b: v >= b, "gt": lambda v, b: v > b,
           "le": lambda v, b: v <= b, "lt": lambda v, b: v < b}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        where = origin.get(f.name, flag_name(f.name))
        what = f.metadata.get("help", "")
        hint = f" ({what})" if what else ""
        tp = _field_type(hints[f.name])
        if _several_texts(v, f.metadata) or (v is None and f.default is None):
            continue
        if not _type_ok(v, tp):
            raise ConfigError(f"{where} {v!r}: must be {_TYPE_WORDS[tp]}{hint}")
        choices = f.metadata.get("choices")
        if choices and v not in choices:
            raise ConfigError(f"{where} {v!r}: use {', '.join(map(str, choices))}")
        if tp in (int, float):
            pairs, text = _bounds(f.metadata, f.default)
            if not math.isfinite(v) or not all(ops[k](v, b) for k, b in pairs):
                raise ConfigError(f"{where} {v!r}: out of range; use a number {text}{hint}")


def number(kind: type = int, ge: float | None = 0, le: float | None = None,
           gt: float | None = None, lt: float | None = None) -> Any:
    """An argparse ``type=`` for a finite number within bounds (for flags that are not config
    fields), so a bad value is argparse's one-line error naming the flag and the range."""

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {_TYPE_WORDS[kind]}") from None
        bounds = [(op, b) for op, b in ((">=", ge), (">", gt), ("<=", le), ("<", lt))
                  if b is not None]
        ok = math.isfinite(v) and all(_OPS[op](v, b) for op, b in bounds)
        if not ok:
            rng = " and ".join(f"{op} {b:g}" for op, b in bounds if math.isfinite(b))
            raise argparse.ArgumentTypeError(f"{text} is out of range; use a number {rng}")
        return v

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


#: most CPU threads any stage accepts (more than this is a typo; the runtimes crash on it)
MAX_THREADS = 256
#: TOML tables a recipe may hold: one per stage (each stage reads its own, skips the others)
SECTIONS = ("train", "convert", "demo", "evaluate", "benchmark", "serve", "enroll")


def read_toml(path: str | Path, cls: type) -> dict[str, Any]:
    """Read a recipe TOML for the stage config ``cls``.

    Keys sit at the top level or under the stage's table (``[train]``, ``[convert]``, ...);
    other stages' tables are skipped. A table no stage knows (a misspelt ``[trian]``), a key
    the stage does not have, or a value of the wrong type is a :class:`ConfigError`.
    """
    path = Path(path)
    section = getattr(cls, "SECTION", None)
    data = _stage_table(path, _read_recipe(path, section), section)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(k for k in data if k not in names)
    if unknown:
        tips = [f"{k} -> {c[0]}?" for k in unknown
                if (c := difflib.get_close_matches(k, list(names), n=1))]
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} for [{section}]" +
                          (f" (did you mean {', '.join(tips)})" if tips else ""))
    hints = typing.get_type_hints(cls)
    meta = {f.name: f.metadata for f in dataclasses.fields(cls)}
    return {k: _toml_value(path, k, v, _field_type(hints[k]), meta[k]) for k, v in data.items()}


def recipe_tables(path: str | Path | None) -> set[str] | None:
    """The tables (``[demo]``, ``[serve]``, ...) of the recipe at ``path``; None when there is
    no path or it cannot be read as TOML (:func:`read_toml` then says what is wrong)."""
    if not path:
        return None
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return {k for k, v in data.items() if isinstance(v, dict)}


def _read_recipe(path: Path, section: str | None) -> dict[str, Any]:
    """The parsed TOML of the recipe at ``path``; a missing, unreadable, invalid or empty
    file is a :class:`ConfigError`."""
    example = f" (e.g. {section}/cpu.toml)" if section == "train" else ""
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; --config takes a recipe .toml file{example}")
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file (a device or pipe); --config takes a "
                          f"recipe .toml file{example}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the recipe as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    if not data:
        raise ConfigError(f"{path}: is empty (no settings); give a recipe with a [{section}] "
                          "table, or drop --config to use the defaults")
    return data


def _stage_table(path: Path, data: dict[str, Any], section: str | None) -> dict[str, Any]:
    """The keys for stage ``section``: its table, or the top-level keys of a recipe without
    tables. An unknown table, keys outside the table, or only other stages' tables is a
    :class:`ConfigError`."""
    tables = [k for k, v in data.items() if isinstance(v, dict)]
    for t in tables:
        if t not in SECTIONS:
            close = difflib.get_close_matches(t, SECTIONS, n=1)
            raise ConfigError(f"{path}: unknown section [{t}]; " + (
                f"did you mean [{close[0]}]?" if close else
                "use " + ", ".join(f"[{s}]" for s in SECTIONS)))
    flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
    if section in data:
        if flat:
            raise ConfigError(f"{path}: {', '.join(sorted(flat))} outside any section; move "
                              f"it under [{section}]")
        return data[section]
    if tables:
        raise ConfigError(f"{path}: no [{section}] section (it has "
                          f"{', '.join(f'[{t}]' for t in tables)}); is it another command's "
                          "recipe?")
    return data


def _toml_value(path: Any, key: str, v: Any, tp: type, meta: dict) -> Any:
    """A recipe's value for a field of type ``tp``, checked (a whole number is taken for a
    float; a list of strings for a text field that takes several)."""
    if _several_texts(v, meta):
        return [_home(t) for t in v]
    if not _type_ok(v, tp):
        several = ", or a non-empty list of them" if meta.get("many") else ""
        raise ConfigError(f"{path}: {key} = {v!r} must be {_TYPE_WORDS[tp]}{several}")
    return float(v) if tp is float else _home(v)


def _home(v: Any) -> Any:
    """A text starting with "~" as the shell reads it (a recipe's ``out = "~/me.profile"`` is
    in the home folder, not in a folder named "~"); anything else unchanged."""
    return os.path.expanduser(v) if isinstance(v, str) and v.startswith("~") else v


def to_json(cfg: Any) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True)
