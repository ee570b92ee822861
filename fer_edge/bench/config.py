"""``BenchmarkConfig``: one config object for ``fer-edge benchmark``. Light tier.

Flags and the ``[benchmark]`` table of a ``--config`` recipe come from this dataclass (the
machinery of :mod:`fer_edge.config`); the split and the timed runs are the options the other
stages take (:mod:`fer_edge.options`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from fer_edge.config import MAX_THREADS, check_config, opt
from fer_edge.errors import ConfigError
from fer_edge.options import as_paths, latency_runs_opt, split_opt

#: a clip shorter than this gives no meaningful frame rate (start-up dominates)
MIN_VIDEO_FRAMES = 10


@dataclass(frozen=True)
class BenchmarkConfig:
    """``fer-edge benchmark``: size, latency, end-to-end FPS, memory and accuracy of builds."""

    SECTION = "benchmark"
    #: number flags are checked by argparse as they are parsed (see add_config_args)
    CHECK_AT_PARSE = True

    builds: str = opt("", ".tflite/.onnx files or folders holding them", positional=True,
                      many=True)
    data: str = opt("", "dataset for accuracy (fer2013.csv/.npz/folders)")
    split: str = split_opt("split scored for accuracy with --data (test = PrivateTest)")
    limit: int = opt(0, "at most N faces for accuracy (0 = all)")
    threads: str = opt("1,all", "thread counts, e.g. 1,2 or 1,all")
    runs: int = latency_runs_opt("timed batch-1 runs per build and thread count")
    video: str = opt("sample", "video for end-to-end FPS (default: sample, the packaged "
                     f"640x480 clip; '' = skip), at least {MIN_VIDEO_FRAMES} frames")
    out: str = opt(".", "folder for the CSV (default: the current directory)")

    @property
    def build_paths(self) -> tuple[str, ...]:
        """The builds or folders given (one string, or several from the command line or TOML)."""
        return as_paths(self.builds)

    def thread_counts(self) -> list[int]:
        """``"1,all"`` -> [1, cores], sorted, each 1..MAX_THREADS.

        Raises:
            ConfigError: a count that is not a whole number in range, nor ``all``.
        """
        counts = set()
        for t in (v.strip() for v in self.threads.split(",")):
            n = (os.cpu_count() or 1) if t == "all" else (int(t) if t.isdigit() else -1)
            if not 1 <= n <= MAX_THREADS:
                raise ConfigError(f"--threads {self.threads!r}: give thread counts "
                                  f"1..{MAX_THREADS} or all, separated by commas, e.g. 1,2 or "
                                  "1,all")
            counts.add(n)
        return sorted(counts)

    def validate(self) -> None:
        """Check every field, that builds are given, and the thread counts.

        Raises:
            ConfigError: one line naming the problem and what to pass.
        """
        check_config(self)
        if not self.build_paths:
            raise ConfigError("pass one or more builds (.tflite/.onnx files or folders holding "
                              "them), e.g. `fer-edge benchmark export/`")
        self.thread_counts()
