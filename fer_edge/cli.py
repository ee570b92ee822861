"""``fer-edge`` command line. Light tier: each subcommand's heavy code is imported lazily.

Every subcommand lives in a light module exposing ``add_parser(subparsers)`` and
``run(args) -> int``. User errors (:class:`~fer_edge.errors.FerEdgeError`) print one line and
exit with their code (2; 3 for a failed accuracy gate), never a traceback (``--verbose`` shows
it).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from fer_edge import __version__
from fer_edge.errors import HEAVY_PACKAGES, FerEdgeError

#: subcommand -> light module with add_parser()/run()
COMMANDS = {
    "train": "fer_edge.train.cli",
    "convert": "fer_edge.convert.cli",
    "evaluate": "fer_edge.evaluate_cli",
    "demo": "fer_edge.demo.cli",
    "serve": "fer_edge.serve.cli",
    "benchmark": "fer_edge.bench.cli",
    "enroll": "fer_edge.personal.cli",
}


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error format: one line, exit 2 (no usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fer-edge",
        description="Facial-emotion recognition from training to the edge: train an "
                    "InceptionV3 on FER-2013, convert it to int8 TFLite/ONNX with a per-class "
                    "accuracy check, and run it live without TensorFlow.")
    parser.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("fer_edge"):
                continue  # stage not part of this build
            raise
        p = mod.add_parser(sub)
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="debug logging and full tracebacks")
        p.set_defaults(_run=mod.run)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (a handler holding the stream it was
    made with writes to a closed file once a test harness or a notebook swaps stderr)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(verbose: bool) -> None:
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler],
                        force=True)
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib", "PIL", "tf2onnx"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    try:  # importing every stage takes a moment: Ctrl-C then is no traceback either
        parser = build_parser()
    except KeyboardInterrupt:
        print("fer-edge: interrupted", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    verbose = bool(getattr(args, "verbose", False))
    setup_logging(verbose)
    try:
        return int(args._run(args) or 0)
    except FerEdgeError as exc:
        if verbose:
            raise
        print(f"fer-edge {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        hint = getattr(exc, "fer_edge_hint", None)  # set by whoever knows better
        if hint is None:
            hint = "; continue with --resume" if args.command == "train" else ""
        print(f"fer-edge {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if verbose or root not in HEAVY_PACKAGES:
            raise
        print(f"fer-edge {args.command}: error: this needs {root}, which is not installed "
              f"(light install): pip install -e '{HEAVY_PACKAGES[root]}'", file=sys.stderr)
        return 2
    except OSError as exc:
        if verbose:
            raise
        print(f"fer-edge {args.command}: error: {os_error_text(exc)}", file=sys.stderr)
        return 2


def os_error_text(exc: OSError) -> str:
    """One line for a file-system error: the path, the problem and what to do."""
    import errno

    where = exc.filename or ""
    if exc.filename2:
        where = f"{where} -> {exc.filename2}"
    fix = {errno.ENOSPC: "free some disk space or write elsewhere",
           errno.EDQUOT: "free some disk space or write elsewhere",
           errno.EACCES: "choose a folder you can write to (or fix its permissions)",
           errno.EPERM: "choose a folder you can write to (or fix its permissions)",
           errno.EROFS: "the file system is read-only; write elsewhere",
           errno.ENOTDIR: "a parent of this path is a file, not a folder; choose another path",
           errno.EISDIR: "this is a folder; give a file name",
           errno.ENOENT: "check the path"}.get(exc.errno, "check the path and try again")
    problem = exc.strerror or str(exc)
    return f"{where}: {problem}; {fix}" if where else f"{problem}; {fix}"


if __name__ == "__main__":
    sys.exit(main())
