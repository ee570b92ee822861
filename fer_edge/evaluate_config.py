"""``EvaluateConfig``: one config object for ``fer-edge evaluate``. Light tier.

Flags and the ``[evaluate]`` table of a ``--config`` recipe come from this dataclass (the
machinery of :mod:`fer_edge.config`); the gate, label, split and latency options are the ones
``fer-edge convert`` and ``train`` take (:mod:`fer_edge.options`).
"""

from __future__ import annotations

from dataclasses import dataclass

from fer_edge.config import MAX_THREADS, check_config, opt
from fer_edge.detect.defaults import DETECTOR
from fer_edge.errors import ConfigError
from fer_edge.options import (
    DEFAULT_LABELS,
    GateOptions,
    as_paths,
    check_labels,
    ferplus_opt,
    gate_opt,
    labels_opt,
    latency_runs_opt,
    split_opt,
)


@dataclass(frozen=True)
class EvaluateConfig(GateOptions):
    """``fer-edge evaluate``: per-class accuracy of exported builds, optionally gated against
    a reference build; or, with ``people``, accuracy per person through the whole pipeline."""

    SECTION = "evaluate"
    #: number flags are checked by argparse as they are parsed (see add_config_args)
    CHECK_AT_PARSE = True

    builds: str = opt("", ".tflite / .onnx files", positional=True, many=True)
    data: str = opt("", "fer2013.csv / .npz / Kaggle folders")
    people: str = opt("", "instead of --data: a folder of people's photos (<person>/<class>/"
                      "*.jpg, or TFEID names PPTVEnn.jpg), each photo through the whole "
                      "pipeline (detect, align, crop, classify; largest face; a missed face is "
                      "wrong), scored per person; no gate")
    detector: str = opt(DETECTOR, f"--people: the face detector (default {DETECTOR}, as the "
                        "demo)")
    split: str = split_opt()
    labels: str = labels_opt("score against the FER-2013 labels or the FER+ plurality labels "
                             "(needs --ferplus; faces FER+ drops are left out)",
                             (DEFAULT_LABELS, "ferplus-majority"))
    ferplus: str = ferplus_opt()
    skip_unknown_classes: bool = opt(False, "class-folder data: skip folders naming no "
                                     "FER-2013 class (contempt)")
    reference: str = opt("", "a build to compare against (e.g. the fp32 TFLite)")
    profile: str = opt("", "personal profile from `fer-edge enroll`: score the builds with it "
                       "(it must have been made with each of them; --reference stays plain)")
    limit: int = opt(0, "at most N faces (0 = all)")
    threads: int | None = opt(None, "runtime threads (default all cores)", ge=1,
                              le=MAX_THREADS)
    max_drop_pp: float = gate_opt("max_drop_pp")
    max_class_p: float = gate_opt("max_class_p")
    min_agreement: float = gate_opt("min_agreement")
    class_correction: str = gate_opt("class_correction")
    latency_runs: int = latency_runs_opt()
    out: str = opt("", "folder for report.md/.json (and PNG plots where matplotlib is "
                   "installed); default: print only")
    force: bool = opt(False, "replace a report already in --out")

    @property
    def build_paths(self) -> tuple[str, ...]:
        """The builds to evaluate (one string, or several from the command line or TOML)."""
        return as_paths(self.builds)

    def validate(self) -> None:
        """Check every field, then that the builds and one of --data / --people are given.

        Raises:
            ConfigError: one line naming the problem and what to pass.
        """
        check_config(self)
        if not self.build_paths:
            raise ConfigError("pass one or more builds (.tflite / .onnx), e.g. `fer-edge "
                              "evaluate model.tflite --data fer2013.npz`")
        if bool(self.data) == bool(self.people):
            raise ConfigError("pass --data (a FER-2013 layout) or --people (a folder of "
                              "people's photos), one of the two")

    def check_data_labels(self) -> None:
        """``--data``: a FER+ label source has its ``--ferplus`` file."""
        check_labels(self.labels, self.ferplus)
