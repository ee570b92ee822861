"""Config machinery shared by every stage: frozen dataclass <-> argparse <-> TOML <-> JSON.

Light tier. Each stage has one frozen dataclass (``TrainConfig`` here, ``ConvertConfig`` in
``fer_edge/convert/config.py``, ...). Its defaults are the only defaults. Field metadata
``help`` becomes the flag's help; ``choices`` its choices; flags are the field names in
kebab-case. ``--config FILE.toml`` sets defaults; explicit flags override it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from fer_edge.errors import ConfigError


def opt(default: Any, help: str, choices: tuple | None = None, positional: bool = False,
        cli: bool = True) -> Any:
    """A config field with CLI help."""
    meta = {"help": help, "choices": choices, "positional": positional, "cli": cli}
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
        shown = "" if default in ("", None) else f" (default: {default})"
        kw: dict[str, Any] = {"help": f.metadata.get("help", "") + shown, "dest": f.name}
        if f.metadata.get("choices"):
            kw["choices"] = f.metadata["choices"]
        if f.metadata.get("positional"):
            kw.pop("dest")
            parser.add_argument(f.name, type=_base_type(tp), nargs="?", default=None,
                                **{k: v for k, v in kw.items()})
            continue
        flag = "--" + f.name.replace("_", "-")
        if tp is bool:
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
    """Build the stage config: dataclass defaults < TOML file < explicit flags < ``fixed``."""
    values: dict[str, Any] = {}
    if getattr(args, "config_file", None):
        values.update(read_toml(args.config_file, cls))
    for f in dataclasses.fields(cls):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    values.update(fixed)
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from None


def read_toml(path: str | Path, cls: type) -> dict[str, Any]:
    """Read a recipe TOML (flat keys, or under a ``[train]``/``[convert]``/... table)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    section = getattr(cls, "SECTION", None)
    if section and isinstance(data.get(section), dict):
        data = data[section]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(k for k in data if k not in names and not isinstance(data[k], dict))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} for {cls.__name__}")
    hints = typing.get_type_hints(cls)
    out = {}
    for k, v in data.items():
        if k not in names:
            continue
        tp = _base_type(hints[k])
        if hints[k] is bool and not isinstance(v, bool):
            raise ConfigError(f"{path}: {k} must be true or false")
        out[k] = tp(v) if hints[k] is not bool and tp in (int, float, str) else v
    return out


def to_json(cfg: Any) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True)


@dataclass(frozen=True)
class TrainConfig:
    """``fer-edge train``: InceptionV3 on FER-2013, transfer learning then fine-tuning."""

    SECTION = "train"

    data: str = opt("", "FER-2013 as fer2013.csv, a .npz (shared/data layout), the Kaggle "
                    "train/+test/ folder, or a folder of <class>/ folders")
    name: str = opt("", "run name (folder under --runs-dir); default <arch>_<input-size>, "
                    "numbered when taken")
    runs_dir: str = opt("runs/train", "where run folders go")
    resume: bool = opt(False, "continue the run --name (or the newest run) from its last epoch")
    arch: str = opt("inception_v3", "network", ("inception_v3", "tiny_cnn"))
    weights: str = opt("imagenet", "backbone init: imagenet (downloaded by Keras), none "
                       "(from scratch), or PATH to a local InceptionV3 notop .h5")
    input_size: int = opt(75, "model input side in pixels (InceptionV3 minimum 75)")
    batch_size: int = opt(64, "batch size (global, across GPUs)")
    head_epochs: int = opt(5, "stage 1 (transfer learning): epochs with the base frozen; "
                           "skipped with --weights none")
    head_lr: float = opt(1e-3, "stage 1 learning rate")
    finetune_epochs: int = opt(20, "stage 2 (fine-tuning) epochs")
    finetune_lr: float = opt(1e-4, "stage 2 peak learning rate (cosine decay)")
    unfreeze_blocks: int = opt(2, "stage 2: unfreeze the top N of the 11 Inception blocks "
                               "(mixed0..mixed10); -1 = all layers")
    freeze_bn: str = opt("auto", "keep BatchNorm in inference mode while fine-tuning: auto = "
                         "yes for pretrained weights, no from scratch", ("auto", "yes", "no"))
    warmup_epochs: int = opt(1, "linear learning-rate warm-up epochs at the start of each stage")
    patience: int = opt(8, "early stopping: epochs without val accuracy gain")
    weight_decay: float = opt(1e-4, "AdamW weight decay")
    clip_norm: float = opt(0.0, "clip the global gradient norm to this (0 = off)")
    dropout: float = opt(0.5, "dropout before the softmax head")
    bn_momentum: float = opt(0.0, "BatchNorm moving-average momentum; 0 = the architecture's "
                             "default (0.99 for InceptionV3). 0.9 tracks a network trained from "
                             "scratch closely enough for early validation to mean something")
    imbalance: str = opt("none", "class-imbalance handling", ("none", "inverse", "sqrt_inverse",
                                                              "effective", "oversample"))
    effective_beta: float = opt(0.999, "beta of the effective-number class weights")
    loss: str = opt("ce", "loss: cross-entropy or focal", ("ce", "focal"))
    label_smoothing: float = opt(0.1, "label smoothing of the cross-entropy/focal loss")
    focal_gamma: float = opt(2.0, "focal loss gamma")
    augment: bool = opt(True, "augment train faces (flip, rotation, shift, zoom, "
                        "brightness, contrast)")
    rotation_deg: float = opt(10.0, "max random rotation, degrees")
    shift: float = opt(0.1, "max random shift, fraction of the side")
    zoom: float = opt(0.1, "max random zoom, fraction")
    brightness: float = opt(0.2, "max random brightness change, fraction of 255")
    contrast: float = opt(0.2, "max random contrast change, fraction")
    tta_flip: bool = opt(True, "evaluate (and run the demo) on face + mirror, probabilities "
                         "averaged; stored in the model spec")
    val_fraction: float = opt(0.1, "val carved from train when the data has no PublicTest")
    skip_bad: bool = opt(False, "drop and count bad rows/images instead of failing")
    limit: int = opt(0, "use at most N faces per split (smoke runs); 0 = all")
    seed: int = opt(0, "random seed (data order, augmentation, init)")
    threads: int = opt(0, "CPU threads for TensorFlow ops; 0 = all cores")
    mixed_precision: str = opt("auto", "float16 compute on GPU", ("auto", "yes", "no"))
    xla: bool = opt(False, "compile the train step with XLA (jit_compile)")
    multi_gpu: bool = opt(True, "MirroredStrategy across all GPUs of this host when >1")
    tensorboard: bool = opt(True, "write TensorBoard logs to <run>/tensorboard")

    def validate(self) -> None:
        if not self.data:
            raise ConfigError("no data: pass --data PATH (fer2013.csv, fer2013.npz or the "
                              "Kaggle train/+test/ folder)")
        min_size = 75 if self.arch == "inception_v3" else 16
        if self.input_size < min_size:
            raise ConfigError(f"--input-size {self.input_size} is below the {self.arch} "
                              f"minimum of {min_size}")
        if self.batch_size < 1 or self.finetune_epochs < 0 or self.head_epochs < 0:
            raise ConfigError("batch size must be >= 1 and epochs >= 0")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.dropout < 1:
            raise ConfigError("label smoothing and dropout must be in [0, 1)")
