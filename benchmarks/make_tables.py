"""Render every ``benchmarks/results/*.csv`` as a Markdown table inside benchmarks/README.md.

Numbers in the README are never typed by hand: this script rewrites the block between the
``<!-- results -->`` markers from the CSV files.

    python benchmarks/make_tables.py
"""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent
START, END = "<!-- results -->", "<!-- /results -->"


def table(path: Path) -> str:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        return f"### {path.name}\n\n(no rows yet)\n"
    head, body = rows[0], rows[1:]
    lines = [f"### {path.name}", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def main() -> None:
    readme = HERE / "README.md"
    text = readme.read_text()
    block = "\n".join(table(p) for p in sorted((HERE / "results").glob("*.csv")))
    a, b = text.index(START) + len(START), text.index(END)
    readme.write_text(text[:a] + "\n\n" + block + "\n" + text[b:])
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
