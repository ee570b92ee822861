"""Regenerate the results tables in the READMEs from the CSVs that the manifest lists.

Numbers in the READMEs are never typed by hand. A table is a block between two markers:

    <!-- table: demo_fps.csv columns=clip,config,fps where=threads:1 -->
    (generated: source line + Markdown table)
    <!-- /table -->

``FILE`` is a file of ``benchmarks/results/`` listed in ``MANIFEST.csv``; ``columns=`` picks
and orders columns (default: all); each ``where=COLUMN:V1|V2`` keeps the rows whose column
holds one of the values. The generated block starts with a line naming the source file, the
command that wrote it and its commit (from the manifest), so every figure can be traced.

    python benchmarks/make_tables.py           # rewrite the blocks in place
    python benchmarks/make_tables.py --check   # exit 1 naming each README that is out of date
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: the READMEs whose tables are generated (relative to the repository)
DOCS = ("README.md", "benchmarks/README.md", "train/README.md", "convert/README.md",
        "demo/README.md")
BLOCK = re.compile(r"(<!-- table: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /table -->)",
                   re.DOTALL)


class TableError(Exception):
    """A marker naming a file the manifest does not list, or a column the file lacks."""


def read_manifest(root: Path) -> dict[str, dict]:
    """The manifest's rows by file name."""
    with (root / "benchmarks" / "results" / "MANIFEST.csv").open(newline="") as f:
        return {r["file"]: r for r in csv.DictReader(f)}


def parse_spec(spec: str) -> tuple[str, list[str], list[tuple[str, set[str]]]]:
    """``FILE [columns=a,b] [where=col:v1|v2 ...]`` -> (file, columns, filters)."""
    name, *opts = spec.split()
    columns, where = [], []
    for opt in opts:
        key, _, value = opt.partition("=")
        if key == "columns":
            columns = value.split(",")
        elif key == "where" and ":" in value:
            col, _, vals = value.partition(":")
            where.append((col, set(vals.split("|"))))
        else:
            raise TableError(f"table {name}: unknown option {opt!r} (columns=, where=COL:V)")
    return name, columns, where


def cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def render(spec: str, manifest: dict[str, dict], root: Path) -> str:
    """The generated block for one marker: source line, blank line, Markdown table."""
    name, columns, where = parse_spec(spec)
    if name not in manifest:
        raise TableError(f"table {name}: not listed in benchmarks/results/MANIFEST.csv "
                         "(add it with benchmarks/manifest.py add)")
    with (root / "benchmarks" / "results" / name).open(newline="") as f:
        reader = csv.DictReader(f)
        head = columns or list(reader.fieldnames or ())
        rows = [r for r in reader if all(r.get(c, "") in vals for c, vals in where)]
    missing = [c for c in head + [c for c, _ in where] if c not in (reader.fieldnames or ())]
    if missing:
        raise TableError(f"table {name}: no column {missing[0]!r} in the file")
    m = manifest[name]
    lines = [f"Source: `benchmarks/results/{name}`, written by `{m['command']}` "
             f"(commit {m['commit']}).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(r[c]) for c in head) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def regenerate(text: str, manifest: dict[str, dict], root: Path) -> str:
    """``text`` with every table block rewritten."""
    return BLOCK.sub(lambda mt: mt.group(1) + render(mt.group("spec"), manifest, root)
                     + mt.group(4), text)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` under a temporary name beside ``path``, then rename it (standard library
    only: ``benchmarks/peer_fer/run.sh`` runs this script with the system Python)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table "
                    "is out of date")
    ap.add_argument("--root", type=Path, default=ROOT, help="repository (default: this one)")
    a = ap.parse_args(argv)
    stale = []
    try:
        manifest = read_manifest(a.root)
        for doc in (a.root / d for d in DOCS):
            if not doc.is_file():
                continue
            text = doc.read_text()
            new = regenerate(text, manifest, a.root)
            if new != text:
                stale.append(doc)
                if not a.check:
                    write_atomically(doc, new)
    except (TableError, OSError) as exc:
        print(f"make_tables: {exc}", file=sys.stderr)
        return 2
    for doc in stale:
        print(f"{doc}: {'out of date' if a.check else 'updated'}")
    if a.check and stale:
        print("run `python benchmarks/make_tables.py` and commit the READMEs")
    return 1 if a.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
