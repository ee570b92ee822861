"""Config machinery shared by every stage: frozen dataclass <-> argparse <-> TOML <-> JSON.

Light tier. Each stage has one frozen dataclass (``TrainConfig`` here, ``ConvertConfig`` in
``fer_edge/convert/config.py``, ...). Its defaults are the only defaults. Field metadata
``help`` becomes the flag's help; ``choices`` its choices; flags are the field names in
kebab-case. ``--config FILE.toml`` sets defaults; explicit flags override it.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from fer_edge.errors import ConfigError
from fer_edge.train.backbones import ARCHS, check_input_size


def opt(default: Any, help: str, choices: tuple | None = None, positional: bool = False,
        cli: bool = True, *, ge: float | None = None, gt: float | None = None,
        le: float | None = None, lt: float | None = None, many: bool = False) -> Any:
    """A config field with CLI help and its allowed values.

    :func:`check_config` checks every field wherever a config is built (flags, TOML, a resumed
    run's saved config): its type; for numbers, finite and within ``ge``/``gt`` (lower) and
    ``le``/``lt`` (upper), and ``>= 0`` when no bound is given (``>= default`` for a negative
    default such as -1 = auto; ``ge=-math.inf`` allows any sign); ``choices`` for values from
    TOML too. ``many``: a text field that also takes several values (the flag takes one or
    more, e.g. a shell glob; TOML a string or a list of strings).
    """
    meta = {"help": help, "choices": choices, "positional": positional, "cli": cli,
            "ge": ge, "gt": gt, "le": le, "lt": lt, "many": many}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def add_config_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per field of the dataclass ``cls`` (plus ``--config``)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else None
        text = f.metadata.get("help", "")
        # no "(default: ...)" where the help already says what the default does
        quiet = default in ("", None) or "(default" in text.lower()
        kw: dict[str, Any] = {"help": text + ("" if quiet else f" (default: {default})"),
                              "dest": f.name}
        if f.metadata.get("choices"):
            kw["choices"] = f.metadata["choices"]
        if f.metadata.get("positional"):
            kw.pop("dest")
            parser.add_argument(f.name, type=_base_type(tp), nargs="?", default=None,
                                **{k: v for k, v in kw.items()})
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.metadata.get("many"):
            parser.add_argument(flag, nargs="+", default=None, metavar=_metavar(tp), **kw)
        elif tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, **kw)
        else:
            parser.add_argument(flag, type=_base_type(tp), default=None, metavar=_metavar(tp),
                                **kw)
    if not any(a.dest == "config_file" for a in parser._actions):
        parser.add_argument("--config", dest="config_file", default=None, metavar="FILE.toml",
                            help="read defaults from a TOML file (flags override it)")


def add_config_parser(sub, name: str, cls: type, help: str,
                      description: str) -> argparse.ArgumentParser:
    """A subcommand whose flags are the fields of the stage config ``cls``."""
    p = sub.add_parser(name, help=help, description=description)
    add_config_args(p, cls)
    return p


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
    from (``--batch-size`` or ``recipe.toml: batch_size =``), without the defaults."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if getattr(args, "config_file", None):
        for k, v in read_toml(args.config_file, cls).items():
            values[k], origin[k] = v, f"{args.config_file}: {k} ="
    for f in dataclasses.fields(cls):
        v = getattr(args, f.name, None)
        if v is not None:
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
        if _several_texts(v, f.metadata):
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
           gt: float | None = None) -> Any:
    """An argparse ``type=`` for a finite number within bounds (for flags that are not config
    fields), so a bad value is argparse's one-line error naming the flag and the range."""

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {_TYPE_WORDS[kind]}") from None
        ok = math.isfinite(v) and (ge is None or v >= ge) and (le is None or v <= le) and (
            gt is None or v > gt)
        if not ok:
            rng = " and ".join(s for s in (f">= {ge:g}" if ge is not None else "",
                                           f"> {gt:g}" if gt is not None else "",
                                           f"<= {le:g}" if le is not None else "") if s)
            raise argparse.ArgumentTypeError(f"{text} is out of range; use a number {rng}")
        return v

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


#: most CPU threads any stage accepts (more than this is a typo; the runtimes crash on it)
MAX_THREADS = 256
#: the largest --batch-size (large-batch multi-GPU runs use a few thousand)
MAX_BATCH = 65536

#: TOML tables a recipe may hold: one per stage (each stage reads its own, skips the others)
SECTIONS = ("train", "convert", "demo", "evaluate", "benchmark")


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
        return list(v)
    if not _type_ok(v, tp):
        several = ", or a non-empty list of them" if meta.get("many") else ""
        raise ConfigError(f"{path}: {key} = {v!r} must be {_TYPE_WORDS[tp]}{several}")
    return float(v) if tp is float else v


def to_json(cfg: Any) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True)


@dataclass(frozen=True)
class TrainConfig:
    """``fer-edge train``: InceptionV3 on FER-2013, transfer learning then fine-tuning."""

    SECTION = "train"

    data: str = opt("", "FER-2013 as fer2013.csv, a .npz (images, labels, usage), the Kaggle "
                    "train/+test/ folder, or a folder of <class>/ folders")
    name: str = opt("", "run name (folder under --runs-dir); default <arch>_<input-size>, "
                    "numbered when taken")
    runs_dir: str = opt("runs/train", "where run folders go")
    labels: str = opt("fer2013", "label source: the FER-2013 labels, FER+ plurality labels, or "
                      "FER+ vote distributions as soft targets (needs --ferplus; see "
                      "fer_edge/data/ferplus.py for contempt/unknown/not-a-face votes)",
                      ("fer2013", "ferplus-majority", "ferplus-soft"))
    ferplus: str = opt("", "FER+ votes file fer2013new.csv (github.com/microsoft/FERPlus), "
                       "row-aligned with --data fer2013.csv/.npz")
    fer2013_weight: float = opt(0.0, "--labels ferplus-soft: share of the FER-2013 one-hot "
                                "label mixed into the FER+ vote target, in [0, 1]", ge=0, le=1)
    skip_unknown_classes: bool = opt(False, "class-folder data: skip folders naming no FER-2013 "
                                     "class (e.g. contempt) instead of failing")
    resume: bool = opt(False, "continue the run --name (or the newest run) from its last epoch")
    arch: str = opt("inception_v3", "backbone, a Keras application with include_top=False ("
                    + ", ".join(ARCHS) + "; tiny_cnn is a test-size stand-in; sizes and "
                    "normalisation: train/README.md)", ARCHS)
    weights: str = opt("imagenet", "backbone init: imagenet (downloaded by Keras), none "
                       "(from scratch), or PATH to a local include_top=False weights .h5 of "
                       "the arch")
    input_size: int = opt(0, "model input side in pixels; 0 = the arch's default (75 for "
                          "inception_v3, its minimum; see train/README.md for each arch)")
    init: str = opt("", "start from a trained fer-edge model: a run folder or a model_float.h5 "
                    "with its spec.json beside it (arch, input size and normalisation come "
                    "from it; with --data a folder of <class>/ folders the classes are the "
                    "folder names, and a new head replaces its own when they differ)")
    budget_min: float = opt(0.0, "stop training after this many minutes of training "
                            "(all stages; the best model so far is kept); 0 = no limit", ge=0)
    batch_size: int = opt(64, "batch size (global, across GPUs; at most the number of "
                          "training faces)", ge=1, le=MAX_BATCH)
    head_epochs: int = opt(5, "stage 1 (transfer learning): epochs with the base frozen; "
                           "skipped with --weights none")
    head_lr: float = opt(1e-3, "stage 1 learning rate", gt=0)
    finetune_epochs: int = opt(20, "stage 2 (fine-tuning) epochs")
    finetune_lr: float = opt(1e-4, "stage 2 peak learning rate (cosine decay)", gt=0)
    unfreeze_blocks: int = opt(2, "stage 2: unfreeze the top N of the 11 Inception blocks "
                               "(mixed0..mixed10); -1 = all layers", ge=-1)
    freeze_bn: str = opt("auto", "keep BatchNorm in inference mode while fine-tuning: auto = "
                         "yes for pretrained weights, no from scratch", ("auto", "yes", "no"))
    warmup_epochs: int = opt(1, "linear learning-rate warm-up epochs at the start of each stage")
    patience: int = opt(8, "early stopping: epochs without val accuracy gain")
    weight_decay: float = opt(1e-4, "AdamW weight decay")
    clip_norm: float = opt(0.0, "clip the global gradient norm to this (0 = off)")
    dropout: float = opt(0.5, "dropout before the softmax head", ge=0, lt=1)
    bn_momentum: float = opt(0.0, "BatchNorm moving-average momentum; 0 = the architecture's "
                             "default (0.99 for InceptionV3). 0.9 tracks a network trained from "
                             "scratch closely enough for early validation to mean something",
                             ge=0, lt=1)
    imbalance: str = opt("none", "class-imbalance handling", ("none", "inverse", "sqrt_inverse",
                                                              "effective", "oversample"))
    effective_beta: float = opt(0.999, "beta of the effective-number class weights", gt=0, lt=1)
    loss: str = opt("ce", "loss: cross-entropy or focal", ("ce", "focal"))
    label_smoothing: float = opt(0.1, "label smoothing of the cross-entropy/focal loss",
                                 ge=0, lt=1)
    focal_gamma: float = opt(2.0, "focal loss gamma")
    augment: bool = opt(True, "augment train faces (flip, rotation, shift, zoom, "
                        "brightness, contrast)")
    rotation_deg: float = opt(10.0, "max random rotation, degrees", ge=0, le=180)
    shift: float = opt(0.1, "max random shift, fraction of the side", ge=0, lt=1)
    zoom: float = opt(0.1, "max random zoom, fraction", ge=0, lt=1)
    brightness: float = opt(0.2, "max random brightness change, fraction of 255", ge=0, le=1)
    contrast: float = opt(0.2, "max random contrast change, fraction", ge=0, le=1)
    box_spread: str = opt("", "crop jitter from a detector's measured box spread "
                          "(blazeface-full, auto, ...; fer_edge/assets/face_crops.json): Gaussian "
                          "shift, scale and rotation with its stds, replacing --shift, --zoom "
                          "and --rotation-deg; '' = those uniform ranges")
    fill_mode: str = opt("reflect", "how the affine warp fills outside the face: reflect, or "
                         "nearest (edge replication, what the demo's crop does past the frame)",
                         ("reflect", "nearest"))
    gamma: float = opt(0.0, "max |log gamma| of a random gamma curve per face (0 = off)",
                       ge=0, le=2)
    blur_sigma: float = opt(0.0, "max Gaussian blur sigma in 48-px face pixels, drawn per face "
                            "with probability --degrade-prob (0 = off)", ge=0, le=8)
    noise: float = opt(0.0, "max std of additive Gaussian noise, fraction of 255, per face "
                       "with probability --degrade-prob (0 = off)", ge=0, le=1)
    jpeg_quality: int = opt(0, "lowest JPEG quality of a random re-encode per face (uniform up "
                            "to 95) with probability --degrade-prob (0 = off)", ge=0, le=95)
    degrade_prob: float = opt(0.5, "probability of each of blur, noise and JPEG per face",
                              ge=0, le=1)
    mix: str = opt("none", "batch mixing of faces and targets", ("none", "mixup", "cutmix"))
    mix_alpha: float = opt(0.2, "mixup/cutmix Beta(alpha, alpha) parameter", gt=0)
    mix_prob: float = opt(0.5, "fraction of batches mixed", ge=0, le=1)
    ema: float = opt(0.0, "exponential moving average of the weights with this decay per "
                     "step, e.g. 0.999 (0 = off); validation, the best model and the test "
                     "report then use the averaged weights", ge=0, lt=1)
    tta_flip: bool = opt(True, "evaluate (and run the demo) on face + mirror, probabilities "
                         "averaged; stored in the model spec")
    val_fraction: float = opt(0.1, "val carved from train when the data has no PublicTest",
                              gt=0, lt=1)
    skip_bad: bool = opt(False, "drop and count bad rows/images instead of failing")
    limit: int = opt(0, "use at most N faces per split (smoke runs); 0 = all")
    seed: int = opt(0, "random seed (data order, augmentation, init)")
    threads: int = opt(0, "CPU threads for TensorFlow ops; 0 = all cores", ge=0, le=MAX_THREADS)
    mixed_precision: str = opt("auto", "compute dtype (variables, softmax and loss stay "
                               "float32): auto = float16 on GPUs with compute capability >= 7.0, "
                               "else float32; no = float32", ("auto", "float16", "bfloat16",
                                                              "no"))
    xla: bool = opt(False, "compile the train step with XLA (jit_compile)")
    distribute: str = opt("auto", "tf.distribute strategy: mirrored = MirroredStrategy over "
                          "this host's GPUs; multiworker = MultiWorkerMirroredStrategy over the "
                          "hosts in the TF_CONFIG environment variable; auto = multiworker when "
                          "TF_CONFIG lists several tasks, else mirrored with >1 GPU, else none",
                          ("auto", "none", "mirrored", "multiworker"))
    peer_timeout: float = opt(120.0, "multiworker: seconds to wait for the other workers (at "
                              "start, in each collective op and at shutdown) before failing",
                              gt=0)
    tensorboard: bool = opt(True, "write TensorBoard logs to <run>/tensorboard")

    def validate(self) -> None:
        check_config(self)
        if not self.data:
            raise ConfigError("no data: pass --data PATH (fer2013.csv, fer2013.npz or the "
                              "Kaggle train/+test/ folder)")
        check_input_size(self.arch, self.input_size)
        if self.budget_min < 0:
            raise ConfigError("--budget-min must be >= 0 (0 = no limit)")
        if self.batch_size < 1 or self.finetune_epochs < 0 or self.head_epochs < 0:
            raise ConfigError("batch size must be >= 1 and epochs >= 0")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.dropout < 1:
            raise ConfigError("label smoothing and dropout must be in [0, 1)")
        if self.labels != "fer2013" and not self.ferplus:
            raise ConfigError(f"--labels {self.labels} needs --ferplus PATH/fer2013new.csv")
        check_run_name(self.name)


#: settings that make a run what it is: ``--resume`` refuses to change them (the checkpoint,
#: the spec and the test report all belong to them). Fields other stages add (e.g. labels)
#: are covered by name as soon as TrainConfig has them.
RUN_IDENTITY = ("data", "arch", "input_size", "labels", "weights", "init", "tta_flip")


def check_run_name(name: str) -> None:
    """A run name is one plain folder name under ``--runs-dir``, never a path out of it."""
    if not name:
        return
    bad = (name in (".", "..") or "/" in name or "\\" in name or name.startswith(".")
           or name != name.strip() or "\0" in name)
    if bad:
        raise ConfigError(f"--name {name!r}: use a plain folder name (letters, digits, - _), "
                          "no path; the run goes under --runs-dir (set that for another place)")
