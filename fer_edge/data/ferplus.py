"""FER+ (Barsoum et al. 2016): the FER-2013 faces relabelled by 10 annotators each. Light tier.

``fer2013new.csv`` (github.com/microsoft/FERPlus) has one row per row of the Kaggle
``fer2013.csv``, in the same order (``fer2013.npz`` keeps that order too), with the columns
``Usage, Image name, neutral, happiness, surprise, sadness, anger, disgust, fear, contempt,
unknown, NF``: vote counts summing to 9 or 10 per row.

How the votes become labels over the 7 FER-2013 classes (one rule, used by training and
evaluation):

- The emotion columns map to FER-2013 ids (neutral 6, happiness 3, surprise 5, sadness 4,
  anger 0, disgust 1, fear 2). ``contempt`` (no FER-2013 class), ``unknown`` and ``NF`` (not a
  face) have no class.
- A row is **kept** when its plurality vote (ties: the first column in the order above) is one
  of the 7 emotions and it has an ``Image name`` (FER+ leaves it empty for the rows it dropped).
  Rows whose plurality is contempt, unknown or not-a-face are dropped: 615 of 35,887 rows of the
  real file (173 of them unnamed, all NF votes).
- **majority** label: that plurality emotion. It agrees with the original FER-2013 label on
  63.4 % of kept rows.
- **soft** target: the 7 emotion votes divided by their sum (contempt/unknown/NF votes are
  dropped, not spread over the classes).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_edge.errors import DataError
from fer_edge.spec import FER2013_LABELS

#: vote columns of fer2013new.csv, in file order
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "NF")
#: FER-2013 class id of each emotion column (the first 7 of VOTE_COLUMNS)
COLUMN_TO_CLASS = (6, 3, 5, 4, 0, 1, 2)
LABEL_SOURCES = ("fer2013", "ferplus-majority", "ferplus-soft")
_USAGE = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}


@dataclass(frozen=True)
class FerPlus:
    """The FER+ votes of every row of fer2013.csv.

    Attributes:
        votes: (N, 10) int32 vote counts in :data:`VOTE_COLUMNS` order.
        usage: (N,) int8 split code per row (0 Training, 1 PublicTest, 2 PrivateTest).
        named: (N,) bool, the row has an ``Image name``.
        path: the csv it came from.
    """

    votes: np.ndarray
    usage: np.ndarray
    named: np.ndarray
    path: str

    def __len__(self) -> int:
        return len(self.votes)

    @property
    def keep(self) -> np.ndarray:
        """(N,) bool: rows with a named face whose plurality vote is one of the 7 emotions."""
        return self.named & (self.votes.argmax(1) < len(COLUMN_TO_CLASS))

    def majority(self) -> np.ndarray:
        """(N,) int64 FER-2013 class id of the plurality emotion; -1 where not :attr:`keep`."""
        top = self.votes.argmax(1)
        lut = np.array(list(COLUMN_TO_CLASS) + [-1, -1, -1], np.int64)
        return np.where(self.keep, lut[top], -1)

    def soft(self) -> np.ndarray:
        """(N, 7) float32 vote distribution over the FER-2013 classes (rows not kept: zeros)."""
        out = np.zeros((len(self), len(FER2013_LABELS)), np.float32)
        out[:, list(COLUMN_TO_CLASS)] = self.votes[:, :len(COLUMN_TO_CLASS)]
        total = out.sum(1, keepdims=True)
        out = np.divide(out, total, out=np.zeros_like(out), where=total > 0)
        out[~self.keep] = 0.0
        return out


def read_ferplus(path: str | Path, expected_rows: int | None = None) -> FerPlus:
    """Read and check ``fer2013new.csv``.

    Args:
        path: the FER+ csv.
        expected_rows: number of rows of the FER-2013 file it must match (None: no check).

    Returns:
        The :class:`FerPlus` votes.

    Raises:
        DataError: a missing file, wrong columns, a non-integer or negative vote, a row whose
            votes do not sum to 9 or 10, an unknown Usage, or the wrong number of rows; one
            line naming the file/row and the fix.
    """
    path = Path(path)
    fix = "use fer2013new.csv from github.com/microsoft/FERPlus unchanged"
    if not path.is_file():
        raise DataError(f"{path}: FER+ file not found; pass --ferplus PATH/fer2013new.csv")
    try:
        f = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from None
    votes, usage, named = [], [], []
    with f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        want = ["Usage", "Image name", *VOTE_COLUMNS]
        if header != want:
            raise DataError(f"{path}: columns {header} are not the FER+ columns "
                            f"{', '.join(want)}; {fix}")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{path.name} line {lineno}"
            if len(row) != len(want):
                raise DataError(f"{where}: {len(row)} fields, expected {len(want)}; {fix}")
            try:
                v = [int(x) for x in row[2:]]
            except ValueError:
                raise DataError(f"{where}: a vote is not an integer; {fix}") from None
            if min(v) < 0 or not 9 <= sum(v) <= 10:
                raise DataError(f"{where}: votes sum to {sum(v)} (min {min(v)}); FER+ rows "
                                f"have 9-10 non-negative votes; {fix}")
            u = _USAGE.get(row[0].strip())
            if u is None:
                raise DataError(f"{where}: Usage {row[0]!r} is not Training/PublicTest/"
                                f"PrivateTest; {fix}")
            votes.append(v)
            usage.append(u)
            named.append(bool(row[1].strip()))
    if not votes:
        raise DataError(f"{path}: no rows; {fix}")
    if expected_rows is not None and len(votes) != expected_rows:
        raise DataError(f"{path}: {len(votes)} rows but the FER-2013 data has {expected_rows}; "
                        "FER+ needs the complete fer2013.csv (all 35,887 rows, in Kaggle order)")
    return FerPlus(np.array(votes, np.int32), np.array(usage, np.int8), np.array(named, bool),
                   str(path))


def apply_labels(ds, source: str, ferplus_path: str = "", fer2013_weight: float = 0.0):
    """Relabel a FER-2013 :class:`~fer_edge.data.readers.Dataset` in place with FER+ votes.

    Args:
        ds: dataset read from fer2013.csv or fer2013.npz (it carries each face's source row).
        source: "fer2013" (unchanged), "ferplus-majority" (labels = FER+ plurality emotion) or
            "ferplus-soft" (targets = FER+ vote distribution, mixed with ``fer2013_weight`` of
            the FER-2013 one-hot label; labels = the argmax of that target, so validation
            accuracy measures what training aims at).
        ferplus_path: fer2013new.csv.
        fer2013_weight: ferplus-soft only: share of the FER-2013 one-hot label in the target,
            in [0, 1] (0 = FER+ votes only; 1 = FER-2013 only, on the FER+-kept rows).

    Returns:
        ``ds``. Faces FER+ drops (plurality contempt/unknown/not-a-face, see the module
        docstring) are removed from every split; a note says how many.

    Raises:
        DataError: FER+ file problems, a dataset without source rows (folder layouts), or a
            FER+ Usage that disagrees with the dataset's split of the same row.
    """
    if source not in LABEL_SOURCES:
        raise DataError(f"unknown label source {source!r}; use one of {', '.join(LABEL_SOURCES)}")
    if source == "fer2013":
        return ds
    if not 0.0 <= fer2013_weight <= 1.0:
        raise DataError(f"--fer2013-weight {fer2013_weight} must be in [0, 1]")
    if not ferplus_path:
        raise DataError(f"--labels {source} needs --ferplus PATH/fer2013new.csv")
    if not ds.n_rows or not ds.rows:
        raise DataError(f"{ds.source}: FER+ labels follow the rows of fer2013.csv / "
                        "fer2013.npz; this dataset layout has no such rows")
    fp = read_ferplus(ferplus_path, expected_rows=ds.n_rows)
    major, soft, keep = fp.majority(), fp.soft(), fp.keep
    code = {"train": 0, "val": 1, "test": 2}
    if any(n.startswith("val carved") for n in ds.notes):
        code["val"] = 0  # carved from Training rows
    check = not any(n.startswith("no Usage column") for n in ds.notes)
    dropped = []
    for split, rows in list(ds.rows.items()):
        if check and split in code:
            bad = fp.usage[rows] != code[split]
            if np.any(bad):
                r = int(rows[np.argmax(bad)])
                raise DataError(f"{fp.path} line {r + 2}: Usage disagrees with the FER-2013 "
                                f"data's split {split!r} of that row; the two files are not in "
                                "the same row order")
        m = keep[rows]
        dropped.append(f"{split} {int((~m).sum())}")
        ds.take(split, m)
        rows = ds.rows[split]
        if source == "ferplus-majority":
            ds.labels[split] = major[rows]
            ds.targets.pop(split, None)
        else:
            onehot = np.eye(len(FER2013_LABELS), dtype=np.float32)[ds.labels[split]]
            t = (fer2013_weight * onehot + (1.0 - fer2013_weight) * soft[rows]).astype(
                np.float32)
            ds.targets[split] = t
            ds.labels[split] = t.argmax(1).astype(np.int64)
    mixed = f" mixed with {fer2013_weight:g} FER-2013 one-hot" if fer2013_weight else ""
    how = "FER+ majority labels" if source == "ferplus-majority" else f"FER+ vote targets{mixed}"
    ds.notes.append(f"{how} from {Path(fp.path).name}; faces dropped (plurality contempt/"
                    f"unknown/not-a-face): {', '.join(dropped)}")
    return ds
