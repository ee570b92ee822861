"""Options that more than one stage takes, each defined once: default, range, choices, help.

Light tier. A stage config declares such a field with a function from here, e.g.
``max_drop_pp: float = gate_opt("max_drop_pp")`` or ``split: str = split_opt()``, so
``fer-edge train``, ``convert``, ``evaluate`` and ``benchmark`` cannot drift apart on the
parity gate, the label source, the FER+ file, the split or the number of timed runs, nor
``demo``/``serve`` and ``enroll`` on the model, the camera frame size or the thread count.
"""

from __future__ import annotations

from typing import Any

from fer_edge.config import MAX_THREADS, opt
from fer_edge.data.ferplus import LABEL_SOURCES
from fer_edge.errors import ConfigError
from fer_edge.gate import CLASS_CORRECTIONS, Gate

#: timed batch-1 runs per build (and thread count) when latency is measured: convert's and
#: evaluate's ``--latency-runs``, benchmark's ``--runs``
LATENCY_RUNS = 100

#: the splits of a FER-2013 dataset (test = PrivateTest, val = PublicTest)
SPLITS = ("train", "val", "test")

#: the label source read when none is given: the FER-2013 labels themselves
DEFAULT_LABELS = LABEL_SOURCES[0]

#: the camera frame size asked for (``--frame-size WxH``) by the demo, serve and enroll
FRAME_SIZE = "640x480"

#: ``--threads`` of the light stages: 0 = the runtime's own default (the classifier: all cores)
THREADS = 0


def model_opt() -> Any:
    """``--model``: the exported build to run (default "": the packaged model)."""
    return opt("", ".tflite/.onnx build; default the packaged model")


def frame_size_opt() -> Any:
    """``--frame-size``: the camera frame size WxH (default :data:`FRAME_SIZE`)."""
    return opt(FRAME_SIZE, "camera frame size WxH")


def threads_opt(help: str) -> Any:
    """``--threads`` of a light stage: 0..MAX_THREADS, default :data:`THREADS`; ``help`` says
    which parts it sets."""
    return opt(THREADS, help, ge=0, le=MAX_THREADS)


def split_opt(help: str = "split to evaluate (test = PrivateTest)") -> Any:
    """``--split``: which split of the dataset is scored (default test)."""
    return opt("test", help, SPLITS)


def labels_opt(help: str, choices: tuple[str, ...] = LABEL_SOURCES) -> Any:
    """``--labels``: the label source (default the FER-2013 labels); ``choices`` a subset of
    :data:`~fer_edge.data.ferplus.LABEL_SOURCES` (evaluation scores hard labels only)."""
    if DEFAULT_LABELS not in choices or not set(choices) <= set(LABEL_SOURCES):
        raise ValueError(f"label choices {choices}: a subset of {LABEL_SOURCES} with "
                         f"{DEFAULT_LABELS}")
    return opt(DEFAULT_LABELS, help, choices)


def ferplus_opt() -> Any:
    """``--ferplus``: the FER+ votes file that ``--labels ferplus-*`` needs."""
    return opt("", "FER+ votes file fer2013new.csv (github.com/microsoft/FERPlus), row-aligned "
               "with --data fer2013.csv/.npz")


def check_labels(labels: str, ferplus: str) -> None:
    """A FER+ label source needs the FER+ file.

    Raises:
        ConfigError: ``--labels ferplus-*`` without ``--ferplus``.
    """
    if labels != DEFAULT_LABELS and not ferplus:
        raise ConfigError(f"--labels {labels} needs --ferplus PATH/fer2013new.csv")


def latency_runs_opt(help: str = "timed batch-1 runs per build and thread count") -> Any:
    """``--latency-runs`` (benchmark: ``--runs``): at least 1, default :data:`LATENCY_RUNS`."""
    return opt(LATENCY_RUNS, help, ge=1)


_GATE = Gate()  # the gate's defaults: defined once, in fer_edge/gate.py

#: help and bounds of each gate field (the defaults come from :class:`~fer_edge.gate.Gate`)
_GATE_FIELDS: dict[str, tuple[str, dict[str, Any]]] = {
    "max_drop_pp": ("gate: max overall accuracy drop vs the reference (convert: the float "
                    "model; evaluate: --reference), percentage points", {"ge": 0, "le": 100}),
    "max_class_p": ("gate: a class whose accuracy drops with McNemar p below this fails",
                    {"gt": 0, "le": 1}),
    "class_correction": ("gate: correct the per-class p values for testing every class at "
                         "once (holm) or not (none)", {}),
    "min_agreement": ("gate: min argmax agreement with the reference (0 = off)",
                      {"ge": 0, "le": 1}),
}


def gate_opt(name: str) -> Any:
    """One field of the parity gate (``max_drop_pp``, ``max_class_p``, ``class_correction``,
    ``min_agreement``): its default is :class:`~fer_edge.gate.Gate`'s."""
    help, bounds = _GATE_FIELDS[name]
    choices = CLASS_CORRECTIONS if name == "class_correction" else None
    return opt(getattr(_GATE, name), help, choices, **bounds)


class GateOptions:
    """Mixin for a stage config declaring the four :func:`gate_opt` fields."""

    max_drop_pp: float
    max_class_p: float
    min_agreement: float
    class_correction: str

    def gate(self) -> Gate:
        """The parity gate these settings describe."""
        return Gate(self.max_drop_pp, self.max_class_p, self.min_agreement,
                    self.class_correction)


def as_paths(value) -> tuple[str, ...]:
    """A positional list option as a tuple: one string (a TOML value) or several (flags)."""
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)
