"""Which build should be fer-edge's default model? The rule of train/README.md, applied.

    python train/select_default.py benchmarks/results/generalization_packaged.csv \\
        --candidate benchmarks/results/generalization_long40.csv runs/long40/export/report.json

Inputs: the packaged model's ``benchmarks/generalization.py`` CSV, and per candidate run its
generalization CSV and the parity report of its conversion (``<run>/export/report.json``,
written by ``fer-edge convert``). Every build of a candidate CSV that the report lists is a
candidate (a peer's rows, e.g. ``fer``'s, are not).

The rule (train/README.md, "Choosing the default model"): a candidate qualifies when

1. its FER-2013 PrivateTest accuracy is at most 1.0 pp below the packaged model's,
2. its parity gate passed (no failure in the report),
3. it beats the packaged model on tfeid_dev (real people, whole pipeline) by at least 2.0 pp,
4. it does not lose CK+48 per subject (accuracy >= the packaged model's).

Among the qualified, the best tfeid_dev score wins, then CK+48 per subject, then FER-2013
PrivateTest, then the name; with none qualified the packaged model stays. Prints one table
(each build's figures, who wins, who is refused and why) and exits 0; ``--out`` also writes
it as a CSV. Bad input (a missing file, column or row) is one line and exit 2. It packages
nothing: that is ``convert/package_default.py``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fer_edge.errors import FerEdgeError
from fer_edge.io import atomic_write_csv, check_output_file

#: the rule's thresholds (pp); train/README.md states them
FER_TOLERANCE_PP = 1.0
MIN_TFEID_GAIN_PP = 2.0
PACKAGED = "fer_default_int8.tflite"
#: metric -> (set, labels) row of a generalization CSV; labels None = any
ROWS = {"fer2013": ("fer2013-privatetest", "fer2013"), "tfeid": ("tfeid_dev-photo", None),
        "ck_subject": ("ckplus48-subject", None)}
COLUMNS = ("build", "set", "labels", "accuracy")
EPS = 1e-9


class InputProblem(Exception):
    """Bad input: the message is the one line printed before exit 2."""


@dataclass
class Build:
    """One build's figures (accuracy in %) and, for a candidate, its gate failures."""

    name: str
    fer2013: float
    tfeid: float
    ck_subject: float
    gate_failures: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    verdict: str = ""


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a generalization CSV; InputProblem when missing or lacking a column."""
    if not path.is_file():
        raise InputProblem(f"{path}: not found; write it with `python benchmarks/"
                           f"generalization.py BUILD --out {path}`")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputProblem(f"{path}: no column {missing[0]!r}; is it a benchmarks/"
                           "generalization.py CSV?")
    return rows


def figures(rows: list[dict[str, str]], build: str, path: Path) -> dict[str, float]:
    """FER-2013 PrivateTest, tfeid_dev (all photos) and CK+48 per-subject accuracy of a build."""
    out = {}
    for key, (set_name, labels) in ROWS.items():
        hit = [r for r in rows if r["build"] == build and r["set"] == set_name
               and (labels is None or r["labels"] == labels)]
        if not hit:
            raise InputProblem(f"{path}: no {set_name} row for {build}; run benchmarks/"
                               "generalization.py on it with every set (fer2013, ckplus, tfeid)")
        try:
            out[key] = float(hit[0]["accuracy"])
        except ValueError:
            raise InputProblem(f"{path}: {build} {set_name}: accuracy {hit[0]['accuracy']!r} "
                               "is not a number") from None
    return out


def read_gate(path: Path) -> dict[str, list[str]]:
    """Build name -> parity-gate failures of a ``fer-edge convert`` report.json."""
    if not path.is_file():
        raise InputProblem(f"{path}: not found; pass the run's export/report.json (written by "
                           "`fer-edge convert RUN --int8`)")
    try:
        builds = json.loads(path.read_text())["parity"]["builds"]
        return {name: list(b["failures"]) for name, b in builds.items()}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputProblem(f"{path}: not JSON; pass the run's export/report.json") from None
    except (KeyError, TypeError, AttributeError):
        raise InputProblem(f"{path}: no parity.builds.<build>.failures; is it the report.json "
                           "of `fer-edge convert`?") from None


def run_name(report: Path) -> str:
    """The run folder a report belongs to (``<run>/export/report.json`` -> ``<run>``)."""
    folder = report.resolve().parent
    return folder.parent.name if folder.name == "export" else folder.name


def load_candidates(pairs: list[list[str]]) -> list[Build]:
    """Every build of each candidate CSV that its report lists, named ``<run>/<build>``."""
    out = []
    for csv_path, report_path in ((Path(a), Path(b)) for a, b in pairs):
        rows, gate = read_csv(csv_path), read_gate(report_path)
        names = [b for b in dict.fromkeys(r["build"] for r in rows) if b in gate]
        if not names:
            raise InputProblem(f"{csv_path}: none of its builds is in {report_path} "
                               f"({', '.join(gate) or 'no builds'}); pair each CSV with the "
                               "report of the run it measured")
        for b in names:
            out.append(Build(f"{run_name(report_path)}/{b}", **figures(rows, b, csv_path),
                             gate_failures=gate[b]))
    return out


def judge(packaged: Build, cands: list[Build]) -> Build | None:
    """Apply the rule: set each candidate's refusals and verdict; return the winner or None."""
    for c in cands:
        d_fer, d_tfeid = c.fer2013 - packaged.fer2013, c.tfeid - packaged.tfeid
        d_ck = c.ck_subject - packaged.ck_subject
        if d_fer < -FER_TOLERANCE_PP - EPS:
            c.refusals.append(f"FER-2013 {d_fer:+.2f} pp (more than {FER_TOLERANCE_PP} pp "
                              "below the packaged model)")
        if c.gate_failures:
            c.refusals.append(f"parity gate failed ({c.gate_failures[0]})")
        if d_tfeid < MIN_TFEID_GAIN_PP - EPS:
            c.refusals.append(f"tfeid_dev {d_tfeid:+.2f} pp (needs +{MIN_TFEID_GAIN_PP} pp)")
        if d_ck < -EPS:
            c.refusals.append(f"CK+48 per subject {d_ck:+.2f} pp (must not lose)")
    qualified = sorted((c for c in cands if not c.refusals),
                       key=lambda c: (-c.tfeid, -c.ck_subject, -c.fer2013, c.name))
    for c in cands:
        c.verdict = "refused: " + "; ".join(c.refusals) if c.refusals else ""
    if not qualified:
        packaged.verdict = "stays the default (no candidate qualifies)"
        return None
    win = qualified[0]
    win.verdict = "WINS: replaces the default"
    packaged.verdict = f"replaced by {win.name}"
    for c in qualified[1:]:
        c.verdict = f"qualifies, not the best: {tie_break(c, win)}"
    return win


def tie_break(c: Build, win: Build) -> str:
    """Why a qualified candidate ranks below the winner, in the rule's order."""
    if abs(c.tfeid - win.tfeid) > EPS:
        return f"tfeid_dev {c.tfeid:.2f} < {win.tfeid:.2f}"
    if abs(c.ck_subject - win.ck_subject) > EPS:
        return f"tied on tfeid_dev; CK+48 per subject {c.ck_subject:.2f} < {win.ck_subject:.2f}"
    if abs(c.fer2013 - win.fer2013) > EPS:
        return f"tied on tfeid_dev and CK+48; FER-2013 {c.fer2013:.2f} < {win.fer2013:.2f}"
    return "tied on every figure; the name decides"


def table(packaged: Build, cands: list[Build]) -> list[dict[str, str]]:
    """One row per build: figures, deltas against the packaged model, gate, verdict."""
    rows = []
    for b in (packaged, *cands):
        is_pkg = b is packaged
        rows.append({
            "build": b.name + (" (packaged)" if is_pkg else ""),
            "fer2013": f"{b.fer2013:.2f}",
            "d_fer2013": "" if is_pkg else f"{b.fer2013 - packaged.fer2013:+.2f}",
            "tfeid_dev": f"{b.tfeid:.2f}",
            "d_tfeid_dev": "" if is_pkg else f"{b.tfeid - packaged.tfeid:+.2f}",
            "ck48_subject": f"{b.ck_subject:.2f}",
            "d_ck48_subject": "" if is_pkg else f"{b.ck_subject - packaged.ck_subject:+.2f}",
            "gate": "" if is_pkg else ("FAIL" if b.gate_failures else "pass"),
            "verdict": b.verdict})
    return rows


def render(rows: list[dict[str, str]]) -> str:
    """The table as Markdown."""
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r[k] for k in head) + " |" for r in rows])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("packaged_csv", help="generalization CSV with the packaged model's rows")
    ap.add_argument("--candidate", nargs=2, action="append", default=[],
                    metavar=("CSV", "REPORT_JSON"),
                    help="a candidate run: its generalization CSV and export/report.json")
    ap.add_argument("--packaged-build", default=PACKAGED,
                    help=f"the packaged model's build name in that CSV (default {PACKAGED})")
    ap.add_argument("--out", help="also write the table as a CSV (e.g. benchmarks/results/"
                    "select_default.csv)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.out:  # before any work: nothing half-written
            check_output_file(args.out, "--out", force=True)
        pkg_path = Path(args.packaged_csv)
        packaged = Build(args.packaged_build,
                         **figures(read_csv(pkg_path), args.packaged_build, pkg_path))
        cands = load_candidates(args.candidate)
    except (InputProblem, FerEdgeError) as exc:
        print(f"select_default: {exc}", file=sys.stderr)
        return 2
    win = judge(packaged, cands)
    rows = table(packaged, cands)
    print(render(rows))
    print(f"\ndecision: {win.name} replaces {packaged.name}" if win else
          f"\ndecision: {packaged.name} stays the default")
    if args.out:
        atomic_write_csv(args.out, rows)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
