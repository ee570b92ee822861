"""Read FER-2013 in the layouts users have. Light tier (numpy + OpenCV).

Layouts (picked from the path):

- ``fer2013.csv`` (Kaggle): columns ``emotion,pixels,Usage``; 2304 space-separated grey values
  per row; ``Usage`` is Training / PublicTest / PrivateTest.
- ``.npz``: ``images`` (N, 48, 48) uint8,
  ``labels`` (N,) uint8, ``usage`` (N,) uint8 (0 Training, 1 PublicTest, 2 PrivateTest).
- Kaggle folders: ``<root>/train/<class>/*.jpg`` and ``<root>/test/<class>/*.jpg``; test files
  named ``PublicTest_*`` / ``PrivateTest_*`` are split accordingly, otherwise all of test is the
  test split.
- Any folder of ``<class>/`` sub-folders of face images (one pool; test 10 %, val 10 % of
  the rest, both stratified).
- ``synthetic``: tiny generated data (smoke runs and tests; not faces).

Splits are ``train`` (Training), ``val`` (PublicTest) and ``test`` (PrivateTest). A layout with
no validation split gets a stratified, seeded one carved from train.
"""

from __future__ import annotations

import csv
import logging
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np

from fer_edge.data.dataset import SPLITS, Dataset
from fer_edge.data.synthetic import make_dataset
from fer_edge.errors import DataError
from fer_edge.spec import FER2013_LABELS, SOURCE_SIZE

log = logging.getLogger(__name__)

_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
_N_PIXELS = SOURCE_SIZE * SOURCE_SIZE


def load_dataset(path: str | Path, *, val_fraction: float = 0.1, seed: int = 0,
                 skip_bad: bool = False, skip_unknown_classes: bool = False,
                 own_classes: bool = False, need: tuple[str, ...] = SPLITS) -> Dataset:
    """Read FER-2013 from a csv, npz, Kaggle folders or a folder of class folders.

    Args:
        path: the file or folder.
        val_fraction: fraction of train carved (stratified) as val when the layout has none.
        seed: seed of that carve.
        skip_bad: drop and count bad rows/images instead of failing.
        skip_unknown_classes: class folders that name no FER-2013 class (e.g. CK+'s
            ``contempt``) are skipped with a note instead of failing.
        own_classes: folder layouts only: the classes are the folder names (lower-cased,
            sorted), whatever they are, instead of FER-2013's 7 (adapting a model to a user's
            own classes). Other layouts keep FER-2013's classes.
        need: the splits that must hold faces (scoring a build needs only the one it scores;
            training needs all three).

    Returns:
        The :class:`Dataset`; the splits in ``need`` are non-empty.

    Raises:
        DataError: one line naming the file/row and the problem.
    """
    if str(path) == "synthetic":
        return make_dataset(seed=seed)
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; pass --data pointing at fer2013.csv, "
                        "fer2013.npz or the Kaggle train/ + test/ folder")
    if path.is_file() and path.suffix.lower() == ".csv":
        ds = _read_csv(path, skip_bad)
    elif path.is_file() and path.suffix.lower() == ".npz":
        ds = _read_npz(path)
    elif path.is_dir() and (path / "train").is_dir():
        ds = _read_kaggle_folders(path, skip_bad, skip_unknown_classes, own_classes)
    elif path.is_dir():
        ds = _read_class_folders(path, skip_bad, seed, skip_unknown_classes, own_classes)
    else:
        raise DataError(f"{path}: unknown dataset format (expected .csv, .npz or a folder)")
    if "val" not in ds.images:
        _carve_val(ds, val_fraction, seed)
    for split in SPLITS:
        ds.images.setdefault(split, np.zeros((0, SOURCE_SIZE, SOURCE_SIZE), np.uint8))
        ds.labels.setdefault(split, np.zeros(0, np.int64))
    for split in need:
        if len(ds.labels[split]) == 0:
            raise DataError(f"{path}: the {split} split is empty; check the Usage column / "
                            "folder names (train, test, PublicTest_/PrivateTest_ prefixes)"
                            + ("" if tuple(need) == SPLITS else
                               f", or pick a split it has with --split ({_held(ds)})"))
    return ds


def _held(ds: Dataset) -> str:
    """The splits of ``ds`` that hold faces, e.g. ``test 140``."""
    return ", ".join(f"{s} {len(ds.labels[s])}" for s in SPLITS if len(ds.labels[s])) or "none"


def load_dataset_for(path: str | Path, labels: tuple[str, ...], **kwargs) -> Dataset:
    """:func:`load_dataset` for a model with these ``labels``: FER-2013's read as usual, any
    other label set read as a folder set's own classes, which must be exactly ``labels``.

    Raises:
        DataError: the data's classes are not the model's.
    """
    own = tuple(labels) != FER2013_LABELS
    ds = load_dataset(path, own_classes=own, **kwargs)
    if tuple(ds.class_names) != tuple(labels):
        raise DataError(f"{path}: its classes ({', '.join(ds.class_names)}) are not the "
                        f"model's ({', '.join(labels)})")
    return ds


def _bad(where: str, problem: str, skip_bad: bool) -> None:
    if not skip_bad:
        raise DataError(f"{where}: {problem} (fix it, or pass --skip-bad to drop bad rows)")
    log.warning("skipping %s: %s", where, problem)


def _read_csv(path: Path, skip_bad: bool) -> Dataset:
    imgs: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    labs: dict[str, list[int]] = {s: [] for s in SPLITS}
    try:
        with path.open("rb") as raw:
            head = raw.read(4)
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from None
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(f"{path}: the file is UTF-16 text; save it as UTF-8 CSV (e.g. "
                        "iconv -f UTF-16 -t UTF-8), as Kaggle ships fer2013.csv")
    try:
        f = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from None
    try:
        with f:
            ds = _read_csv_rows(path, f, imgs, labs, skip_bad)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start} of a block cannot be "
                        "decoded); save it as UTF-8 CSV") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV ({exc}); is it fer2013.csv?") from None
    return ds


def _read_csv_rows(path: Path, f, imgs: dict, labs: dict, skip_bad: bool) -> Dataset:
    skipped, n_rows = 0, 0
    rows: dict[str, list[int]] = {s: [] for s in SPLITS}  # file row of each face (for FER+)
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: the file is empty")
    cols = [h.strip().lower() for h in header]
    try:
        i_emo, i_pix = cols.index("emotion"), cols.index("pixels")
    except ValueError:
        raise DataError(f"{path}: header must have 'emotion' and 'pixels' columns "
                        f"(Kaggle fer2013.csv), got {header}") from None
    i_use = cols.index("usage") if "usage" in cols else None
    for lineno, row in enumerate(reader, start=2):
        where = f"{path.name} line {lineno}"
        if not row:
            continue
        n_rows += 1
        if len(row) < len(cols):
            _bad(where, f"expected {len(cols)} fields, got {len(row)}", skip_bad)
            skipped += 1
            continue
        try:
            label = int(row[i_emo])
        except ValueError:
            _bad(where, f"emotion {row[i_emo]!r} is not an integer", skip_bad)
            skipped += 1
            continue
        if not 0 <= label < len(FER2013_LABELS):
            _bad(where, f"emotion {label} is outside 0..6", skip_bad)
            skipped += 1
            continue
        try:
            px = np.array(row[i_pix].split(), dtype=np.int32)
        except ValueError:
            _bad(where, "pixels contain a non-integer value", skip_bad)
            skipped += 1
            continue
        if px.size != _N_PIXELS or px.min(initial=0) < 0 or px.max(initial=0) > 255:
            problem = (f"{px.size} pixel values, expected {_N_PIXELS} (48x48)"
                       if px.size != _N_PIXELS else "pixel values outside 0..255")
            _bad(where, problem, skip_bad)
            skipped += 1
            continue
        usage = row[i_use].strip() if i_use is not None else "Training"
        split = _USAGE.get(usage)
        if split is None:
            _bad(where, f"Usage {usage!r} is not Training/PublicTest/PrivateTest", skip_bad)
            skipped += 1
            continue
        imgs[split].append(px.astype(np.uint8).reshape(SOURCE_SIZE, SOURCE_SIZE))
        labs[split].append(label)
        rows[split].append(n_rows - 1)
    ds = _pack(imgs, labs, str(path), skipped)
    ds.rows = {s: np.array(v, np.int64) for s, v in rows.items()}
    ds.n_rows = n_rows
    if i_use is None:  # one pool, like a folder of class folders: test carved, then val
        x, y, r = ds.images["train"], ds.labels["train"], ds.rows["train"]
        rest, test = stratified_split(y, 0.1, 1)
        ds.images = {"train": x[rest], "test": x[test]}
        ds.labels = {"train": y[rest], "test": y[test]}
        ds.rows = {"train": r[rest], "test": r[test]}
        ds.notes.append("no Usage column: test (10%) carved, stratified")
    return ds


def _read_npz(path: Path) -> Dataset:
    try:
        d = np.load(path, allow_pickle=False)
        images, labels, usage = d["images"], d["labels"], d["usage"]
    except KeyError as exc:
        raise DataError(f"{path}: missing array {exc} (need images, labels, usage)") from None
    except zipfile.BadZipFile:
        raise DataError(f"{path}: the .npz is truncated or corrupt (not a complete zip "
                        "archive); copy or download it again") from None
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable .npz ({exc or 'empty file'}); it needs "
                        "arrays images (N, 48, 48) uint8, labels (N,), usage (N,)") from None
    if images.ndim != 3 or images.shape[1:] != (SOURCE_SIZE, SOURCE_SIZE):
        raise DataError(f"{path}: images has shape {images.shape}, expected (N, 48, 48)")
    if not (len(images) == len(labels) == len(usage)):
        raise DataError(f"{path}: images/labels/usage lengths differ")
    if labels.ndim != 1 or usage.ndim != 1 or labels.dtype.kind not in "iu" or (
            usage.dtype.kind not in "iu"):
        raise DataError(f"{path}: labels and usage must be 1-D integer arrays")
    if labels.size and (int(labels.max()) >= len(FER2013_LABELS) or int(labels.min()) < 0):
        raise DataError(f"{path}: a label is outside 0..6")
    if usage.size and (int(usage.min()) < 0 or int(usage.max()) > 2):
        raise DataError(f"{path}: a usage code is outside 0..2 (0 Training, 1 PublicTest, "
                        "2 PrivateTest)")
    images = _npz_pixels(path, images)
    out_i, out_l, rows = {}, {}, {}
    for code, split in enumerate(SPLITS):
        m = usage == code
        out_i[split] = np.ascontiguousarray(images[m])
        out_l[split] = labels[m].astype(np.int64)
        rows[split] = np.flatnonzero(m).astype(np.int64)
    return Dataset(out_i, out_l, str(path), rows=rows, n_rows=len(labels))


def _npz_pixels(path: Path, images: np.ndarray) -> np.ndarray:
    """(N, 48, 48) uint8 of an .npz's ``images``: uint8 as is; other integer or float arrays
    only when every value is a grey level in 0..255 (floats are rounded), as ``predict()``
    takes them.

    Raises:
        DataError: NaN/infinite values, floats that look scaled to 0..1, values outside 0..255
            or a non-numeric dtype.
    """
    fix = "save the faces as uint8 grey levels 0..255 (e.g. np.clip(x, 0, 255).astype(np.uint8))"
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind not in "iuf":
        raise DataError(f"{path}: images are {images.dtype}, not numbers; {fix}")
    if images.dtype.kind == "f" and images.size and not np.isfinite(images).all():
        raise DataError(f"{path}: images hold NaN or infinite values; {fix}")
    lo, hi = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
    if lo < 0 or hi > 255:
        raise DataError(f"{path}: image values span {lo:g}..{hi:g}, outside 0..255; {fix}")
    if images.dtype.kind == "f" and 0 < hi <= 1:
        raise DataError(f"{path}: images are floats in 0..{hi:g}: they look scaled to 0..1; "
                        "save grey levels 0..255 (e.g. (x * 255).round().astype(np.uint8))")
    return (np.rint(images) if images.dtype.kind == "f" else images).astype(np.uint8)


#: class-folder names other datasets use -> FER-2013 class (CK+, JAFFE, AffectNet, RAF-DB...)
CLASS_SYNONYMS = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "smile": "happy",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral",
}


def class_id(name: str) -> int | None:
    """FER-2013 class id of a class-folder name, or None when it names no FER-2013 class.

    Accepts the 7 FER-2013 names, their usual synonyms (:data:`CLASS_SYNONYMS`, case- and
    separator-insensitive: ``Anger``, ``sadness``, ``Happiness``) and the ids ``0``..``6``.
    """
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key.isdigit():
        return int(key) if int(key) < len(FER2013_LABELS) else None
    canon = CLASS_SYNONYMS.get(key)
    return None if canon is None else FER2013_LABELS.index(canon)


def _class_id(name: str, where: Path) -> int:
    cid = class_id(name)
    if cid is None:
        raise DataError(f"{where}: unknown class folder {name!r}: it maps to none of the 7 classes "
                        f"({', '.join(FER2013_LABELS)} or a synonym such as anger, sadness, "
                        "happiness); rename it, or pass --skip-unknown-classes to skip it")
    return cid


def _read_image(path: Path, skip_bad: bool) -> np.ndarray | None:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        _bad(str(path), "cannot be read as an image", skip_bad)
        return None
    if img.shape != (SOURCE_SIZE, SOURCE_SIZE):
        interp = cv2.INTER_AREA if min(img.shape) >= SOURCE_SIZE else cv2.INTER_LINEAR
        img = cv2.resize(img, (SOURCE_SIZE, SOURCE_SIZE), interpolation=interp)
    return img


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def own_class_names(*roots: Path) -> tuple[str, ...]:
    """A folder set's own classes: its sub-folder names that hold images, lower-cased and
    sorted."""
    return tuple(sorted({p.name.strip().lower() for r in roots if r.is_dir()
                         for p in _class_dirs(r)
                         if any(f.suffix.lower() in _IMAGE_EXT for f in p.iterdir())}))


def scan_class_folders(root: Path, skip_unknown: bool = False,
                       notes: list[str] | None = None,
                       names: tuple[str, ...] | None = None) -> list[tuple[Path, int]]:
    """Image files of ``root/<class>/`` folders with their FER-2013 class ids.

    Args:
        root: folder of class folders (names as accepted by :func:`class_id`).
        skip_unknown: skip a folder that names no FER-2013 class (a note is logged and
            appended to ``notes``) instead of raising.
        notes: list collecting those notes.
        names: a folder set's own classes (:func:`own_class_names`): ids index into it and
            every folder name is accepted (``skip_unknown`` is then moot).

    Returns:
        Sorted (path, class id) pairs.

    Raises:
        DataError: an unknown class folder (without ``skip_unknown``).
    """
    items = []
    for sub in _class_dirs(root):
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in _IMAGE_EXT)
        if names is not None:
            if files:
                items += [(p, names.index(sub.name.strip().lower())) for p in files]
            continue
        if skip_unknown and class_id(sub.name) is None:
            note = (f"class folder {sub.name!r} ({len(files)} images) skipped: no FER-2013 "
                    "class")
            log.info("%s: %s", root, note)
            if notes is not None:
                notes.append(note)
            continue
        cid = _class_id(sub.name, sub)
        items += [(p, cid) for p in files]
    return items


def _check_two_classes(root: Path, labels: list[int], names: tuple[str, ...]) -> None:
    found = sorted(set(labels))
    if len(found) < 2:
        raise DataError(f"{root}: images of {len(found)} class"
                        f"{'' if len(found) == 1 else 'es'} found "
                        f"({', '.join(names[c] for c in found) or 'none'}); a classifier "
                        "needs at least 2 class folders with images")


def _read_kaggle_folders(root: Path, skip_bad: bool, skip_unknown: bool = False,
                         own_classes: bool = False) -> Dataset:
    imgs: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    labs: dict[str, list[int]] = {s: [] for s in SPLITS}
    skipped = 0
    test_dir = root / "test"
    if not test_dir.is_dir():
        raise DataError(f"{root}: has train/ but no test/ folder (Kaggle layout)")
    prefixed, notes = False, []
    names = own_class_names(root / "train", test_dir) if own_classes else None
    for folder in ("train", "test"):
        for p, cid in scan_class_folders(root / folder, skip_unknown, notes, names):
            img = _read_image(p, skip_bad)
            if img is None:
                skipped += 1
                continue
            if folder == "train":
                split = "train"
            elif p.name.startswith("PublicTest"):
                split, prefixed = "val", True
            else:
                split = "test"
            imgs[split].append(img)
            labs[split].append(cid)
    if not prefixed:
        del imgs["val"], labs["val"]
    names = names or FER2013_LABELS
    _check_two_classes(root / "train", labs["train"], names)
    ds = _pack(imgs, labs, str(root), skipped)
    ds.notes += notes
    ds.class_names = names
    if not prefixed:
        ds.notes.append("test/ has no PublicTest_/PrivateTest_ names: all of test/ is test")
    return ds


def read_class_folders(root: str | Path, *, own_classes: bool = False, skip_bad: bool = False,
                       skip_unknown: bool = False, notes: list[str] | None = None
                       ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], list[Path]]:
    """Every image of a folder of ``<class>/`` folders, unsplit.

    Args:
        root: the folder.
        own_classes: classes are the folder names (lower-cased, sorted); else FER-2013's.
        skip_bad: drop unreadable images instead of failing.
        skip_unknown: FER-2013 classes: skip folders naming none (see
            :func:`scan_class_folders`).
        notes: list collecting notes on skipped folders.

    Returns:
        ``(images, labels, class_names, files)``: (N, 48, 48) uint8 grey faces, (N,) int64
        ids into ``class_names``, and each image's file (for grouping, e.g. by subject).

    Raises:
        DataError: no images, fewer than 2 classes, or a bad image without ``skip_bad``.
    """
    root = Path(root)
    names = own_class_names(root) if own_classes else None
    items = scan_class_folders(root, skip_unknown, notes, names)
    if not items:
        raise DataError(f"{root}: no <class>/ sub-folders with images found")
    imgs, labs, files = [], [], []
    for p, cid in items:
        img = _read_image(p, skip_bad)
        if img is None:
            continue
        imgs.append(img)
        labs.append(cid)
        files.append(p)
    names = names or FER2013_LABELS
    _check_two_classes(root, labs, names)
    return np.stack(imgs), np.array(labs, np.int64), names, files


def _read_class_folders(root: Path, skip_bad: bool, seed: int, skip_unknown: bool = False,
                        own_classes: bool = False) -> Dataset:
    notes: list[str] = []
    x, y, names, files = read_class_folders(root, own_classes=own_classes, skip_bad=skip_bad,
                                            skip_unknown=skip_unknown, notes=notes)
    skipped = len(scan_class_folders(root, skip_unknown, None,
                                     names if own_classes else None)) - len(files)
    rest, test = stratified_split(y, 0.1, seed + 1)
    ds = Dataset({"train": x[rest], "test": x[test]}, {"train": y[rest], "test": y[test]},
                 str(root), skipped, notes + ["class folders: test (10%) carved, stratified"],
                 class_names=names)
    return ds


def _pack(imgs: dict[str, list], labs: dict[str, list], source: str, skipped: int) -> Dataset:
    out_i = {s: (np.stack(v) if v else np.zeros((0, SOURCE_SIZE, SOURCE_SIZE), np.uint8))
             for s, v in imgs.items()}
    out_l = {s: np.array(labs[s], np.int64) for s in imgs}
    return Dataset(out_i, out_l, source, skipped)


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of ``y`` into (keep, carved) with ``fraction`` of each class carved.

    Args:
        y: (N,) int class ids.
        fraction: share of each class to carve (at least one per class with >= 2 members).
        seed: RNG seed.

    Returns:
        Two sorted int64 index arrays.
    """
    rng = np.random.default_rng(seed)
    keep, carved = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        carved.append(idx[:k])
        keep.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(carved))


def _carve_val(ds: Dataset, fraction: float, seed: int) -> None:
    y = ds.labels["train"]
    if len(y) == 0:
        return
    keep, val = stratified_split(y, fraction, seed)
    for d in (ds.images, ds.labels, ds.rows, ds.targets):
        if "train" in d:
            d["val"] = d["train"][val]
            d["train"] = d["train"][keep]
    ds.notes.append(f"val carved from train: {fraction:.0%} stratified, seed {seed}")
