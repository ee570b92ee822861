"""Replace the packaged default model with a converted run, every step in order, one command.

    taskset -c 0 python convert/replace_default.py RUN \\
        --commands "TRAIN COMMAND" "fer-edge convert RUN --int8 --config convert/cpu.toml ..."

``RUN`` is a train run folder that ``fer-edge convert --int8`` has exported (``export/report.json``
with a build that passed the parity gate, ``config.json``, ``history.csv``). The steps:

1. ``convert/package_default.py RUN --commands ...``: the build and its card into
   ``fer_edge/assets`` (refused, nothing written, if the build failed the parity gate).
2. ``benchmarks/generalization.py`` on the packaged asset ->
   ``benchmarks/results/generalization_packaged.csv`` (FER-2013, FER+, CK+48, pasted frames,
   tfeid_dev), and its manifest row (``benchmarks/manifest.py add ... --replace``) with the
   new sha256.
3. The card block of ``README.md`` (``<!-- card: ... -->`` markers) rewritten from the new card.
4. ``benchmarks/make_tables.py``: every generated README table.
5. A checklist, printed, not acted on: README lines outside generated blocks that still hold
   the old model's figures, sha256 or run name (prose a person must rewrite), and the results
   files the manifest records as measured on the old default (to re-measure later).

Each step prints its duration. A step that fails stops the script (exit 2) naming the step;
the steps before it are not undone (re-run the script, or ``git checkout -- fer_edge/assets
benchmarks/results README.md train/README.md benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "fer_edge" / "assets"
CARD = ASSETS / "fer_default_int8.card.json"
RESULTS = ROOT / "benchmarks" / "results"
PACKAGED_CSV = "generalization_packaged.csv"
GEN_COMMAND = ("python benchmarks/generalization.py --out benchmarks/results/"
               f"{PACKAGED_CSV} --no-tables")
#: the READMEs whose prose may quote the packaged model
DOCS = ("README.md", "demo/README.md", "train/README.md", "convert/README.md",
        "benchmarks/README.md")
CARD_BLOCK = re.compile(r"(<!-- card: fer_default_int8\.card\.json -->\n)(.*?)(<!-- /card -->)",
                        re.DOTALL)
GENERATED = re.compile(r"<!-- (table|card): .*?-->\n.*?<!-- /(table|card) -->", re.DOTALL)
#: rows of the packaged generalisation table whose accuracy README prose tends to quote
#: (tfeid_dev-person also matches the per-person rows)
QUOTED_SETS = ("fer2013-privatetest", "ckplus48-image", "ckplus48-subject", "tfeid_dev-photo",
               "tfeid_dev-person")


class StepError(Exception):
    """A step failed; the message names it."""


def run_step(name: str, cmd: list[str]) -> None:
    """Run one step's command from the repository root, stdout/stderr passed through."""
    t0 = time.monotonic()
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    if rc != 0:
        raise StepError(f"step '{name}' failed (exit {rc}); see its message above")
    print(f"== {name}: done in {time.monotonic() - t0:.0f} s", flush=True)


def read_card() -> dict:
    return json.loads(CARD.read_text()) if CARD.is_file() else {}


def old_figures(card: dict) -> set[str]:
    """Strings that identify the outgoing model in prose: its sha256 prefixes, run name,
    card accuracy and the packaged generalisation accuracies (2 and 1 decimals)."""
    out = {card.get("sha256", "")[:8], card.get("source_run", "")}
    if "training_minutes" in card:
        out.add(f"{card['training_minutes']:.0f} min")
    out.add(card.get("reissued", {}).get("previous_sha256", "")[:8])
    accs = [100 * card["evaluation"]["accuracy"]] if "evaluation" in card else []
    path = RESULTS / PACKAGED_CSV
    if path.is_file():
        with path.open(newline="") as f:
            accs += [float(r["accuracy"]) for r in csv.DictReader(f)
                     if r["set"].startswith(QUOTED_SETS)]
    for a in accs:
        out |= {f"{a:.2f}", f"{a:.1f}"}
    return {s for s in out if s}


def card_block(card: dict) -> str:
    """Markdown bullets of the card's figures (the README's ``card`` block)."""
    ev = card["evaluation"]
    recall = ", ".join(f"{k} {100 * v:.1f}" for k, v in ev["recall"].items())
    cmds = "; ".join(f"`{c}`" for c in card.get("commands", [])) or "not recorded"
    bullets = (
        f"- Source: run `{card['source_run']}`, build `{card['source_build']}` "
        f"({card['size_mb']} MB, sha256 `{card['sha256'][:12]}...`), packaged "
        f"{card['packaged']}; {card['trained_epochs']} epochs, "
        f"{card['training_minutes']:.0f} min of training. Commands: {cmds}.\n"
        f"- FER-2013 PrivateTest ({ev['n']:,} faces, flip-averaged as the demo does): "
        f"**{100 * ev['accuracy']:.2f} %** accuracy, macro-F1 {100 * ev['macro_f1']:.1f} %; "
        f"float model {100 * ev['float_accuracy']:.2f} % ({ev['delta_pp_vs_float']:+.2f} pp, "
        f"agreement {100 * ev['agreement_with_float']:.1f} %, parity gate {ev['gate']}). "
        f"Recall: {recall} %. `tests/test_default_model.py` re-measures it when FER-2013 "
        "is present.")
    return "".join(textwrap.fill(b, 98, subsequent_indent="  ", break_long_words=False,
                                 break_on_hyphens=False) + "\n" for b in bullets.split("\n"))


def rewrite_card_block(card: dict) -> None:
    """Rewrite README.md's card block from ``card``; an error if the markers are missing."""
    path = ROOT / "README.md"
    text = path.read_text()
    if not CARD_BLOCK.search(text):
        raise StepError("README.md has no <!-- card: fer_default_int8.card.json --> block; "
                        "restore it (see the Default model section)")
    new = CARD_BLOCK.sub(lambda m: m.group(1) + card_block(card) + m.group(3), text)
    tmp = path.with_name(".README.md.tmp")
    tmp.write_text(new)
    tmp.replace(path)


def stale_prose(needles: set[str]) -> list[str]:
    """``file:line: text`` of README lines outside generated blocks holding an old figure."""
    pat = re.compile("|".join(rf"(?<![\d.]){re.escape(n)}(?![\d])" for n in sorted(needles)))
    out = []
    for doc in DOCS:
        text = GENERATED.sub(lambda m: "\n" * m.group(0).count("\n"), (ROOT / doc).read_text())
        out += [f"{doc}:{i}: {line.strip()[:110]}" for i, line in
                enumerate(text.splitlines(), 1) if pat.search(line)]
    return out


def stale_results(new_sha: str) -> list[str]:
    """Results the manifest records as measured on a default model other than ``new_sha``."""
    with (RESULTS / "MANIFEST.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        shas = re.findall(r"fer_default_int8\.tflite=([0-9a-f]+)", r["model_sha256"])
        if shas and not any(new_sha.startswith(s) for s in shas):
            out.append(f"{r['file']}: measured on {shas[0][:8]}; re-run `{r['command']}`")
    return out


def package(args: argparse.Namespace) -> dict:
    py = sys.executable
    run_step("package", [py, "convert/package_default.py", str(args.run), "--commands",
                         *args.commands])
    return read_card()


def measure(card: dict, args: argparse.Namespace) -> None:
    py = sys.executable
    run_step("generalization", [py, "benchmarks/generalization.py", "--out",
                                str(RESULTS / PACKAGED_CSV), "--no-tables",
                                *(["--threads", str(args.threads)] if args.threads else [])])
    run_step("manifest", [
        py, "benchmarks/manifest.py", "add", PACKAGED_CSV, "--script",
        "benchmarks/generalization.py", "--command", GEN_COMMAND, "--replace",
        "--model-sha256", f"fer_default_int8.tflite={card['sha256']}",
        "--run", f"packaged: the packaged default model, fer_default_int8.tflite "
                 f"(run {card['source_run']})",
        "--note", args.note])


def checklist(old_needles: set[str], card: dict) -> None:
    prose, results = stale_prose(old_needles), stale_results(card["sha256"])
    print(f"\n== to rewrite by hand ({len(prose)} README lines still quote the old model: "
          f"{', '.join(sorted(old_needles))}):")
    print("\n".join(f"   {p}" for p in prose) or "   none")
    print("   and README.md 'Default model': the bullets above the card block tell how the old "
          "build was made")
    print(f"\n== to re-measure later ({len(results)} results files made on an old default):")
    print("\n".join(f"   {r}" for r in results) or "   none")
    print("\n== then: pytest tests/test_default_model.py tests/test_make_tables.py "
          "tests/test_manifest.py tests/test_repo.py; commit the asset, card, results, "
          "MANIFEST.csv and READMEs together")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run folder exported by `fer-edge convert --int8`")
    ap.add_argument("--commands", nargs="+", required=True,
                    help="the train and convert command lines that made the build (card)")
    ap.add_argument("--threads", type=int, default=None, help="generalization.py --threads")
    ap.add_argument("--note", default="taskset -c 0 on a 2-core machine; made by "
                    "convert/replace_default.py", help="manifest note of the new results row")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.run / "export" / "report.json").is_file():
        print(f"replace_default: {args.run}/export/report.json not found; run "
              f"`fer-edge convert {args.run} --int8` first", file=sys.stderr)
        return 2
    t0, old = time.monotonic(), read_card()
    try:
        needles = old_figures(old)
        card = package(args)
        if card.get("sha256") == old.get("sha256"):
            print("replace_default: the packaged model is unchanged (same sha256)")
        measure(card, args)
        rewrite_card_block(card)
        run_step("tables", [sys.executable, "benchmarks/make_tables.py"])
    except StepError as exc:
        print(f"replace_default: {exc}", file=sys.stderr)
        return 2
    checklist(needles - old_figures(card) if card != old else needles, card)
    print(f"\nreplace_default: done in {(time.monotonic() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
