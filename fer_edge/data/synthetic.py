"""Tiny class-separable synthetic 'faces' for tests and smoke runs. Light tier.

Each class is a grating with a class-specific spatial frequency (invariant to the flips,
small rotations and brightness/contrast changes of training augmentation) plus a blob at a
class-specific place, with noise and jitter, so a small network learns it in a few epochs and
per-class results mean something. Not faces: never use them to judge FER quality.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fer_edge.data.dataset import Dataset
from fer_edge.spec import FER2013_LABELS, SOURCE_SIZE


def make_faces(n: int, seed: int = 0, size: int = SOURCE_SIZE,
               num_classes: int = len(FER2013_LABELS)) -> tuple[np.ndarray, np.ndarray]:
    """Make ``n`` synthetic grey images, classes balanced round-robin.

    Returns:
        images (n, size, size) uint8 grey, labels (n,) int64.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = np.empty((n, size, size), np.uint8)
    for i, c in enumerate(labels):
        ang = rng.uniform(0, np.pi)
        cycles = 1.5 * 1.35 ** c  # 1.5 .. 9 cycles per image
        stripes = np.sin(2 * np.pi * cycles * (xx * np.cos(ang) + yy * np.sin(ang))
                         + rng.uniform(0, 6))
        cx = 0.5 + 0.28 * np.cos(2 * np.pi * c / num_classes) + rng.normal(0, 0.03)
        cy = 0.5 + 0.28 * np.sin(2 * np.pi * c / num_classes) + rng.normal(0, 0.03)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.02)
        img = 120 + 70 * stripes + 60 * blob + rng.normal(0, 8, (size, size))
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def write_npz(path: str | Path, n_train: int = 280, n_val: int = 70, n_test: int = 140,
              seed: int = 0) -> Path:
    """Write a synthetic dataset in the ``fer2013.npz`` layout (images, labels, usage)."""
    parts = [make_faces(n, seed + k) for k, n in enumerate((n_train, n_val, n_test))]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts]).astype(np.uint8)
    sizes = (n_train, n_val, n_test)
    usage = np.concatenate([np.full(n, k, np.uint8) for k, n in enumerate(sizes)])
    path = Path(path)
    np.savez_compressed(path, images=images, labels=labels, usage=usage,
                        names=np.array(FER2013_LABELS), usage_names=np.array(
                            ["Training", "PublicTest", "PrivateTest"]))
    return path


def write_csv(path: str | Path, n_train: int = 70, n_val: int = 14, n_test: int = 14,
              seed: int = 0) -> Path:
    """Write a synthetic dataset in the Kaggle ``fer2013.csv`` format."""
    path = Path(path)
    with path.open("w") as f:
        f.write("emotion,pixels,Usage\n")
        for k, (n, usage) in enumerate(zip((n_train, n_val, n_test),
                                           ("Training", "PublicTest", "PrivateTest"))):
            x, y = make_faces(n, seed + k)
            for img, lab in zip(x, y):
                f.write(f"{lab},{' '.join(map(str, img.ravel()))},{usage}\n")
    return path


def write_folders(root: str | Path, n_train: int = 70, n_test: int = 28, seed: int = 0,
                  kaggle_names: bool = True) -> Path:
    """Write a synthetic dataset in the Kaggle ``train/<class>/`` + ``test/<class>/`` layout."""
    root = Path(root)
    for k, (folder, n) in enumerate((("train", n_train), ("test", n_test))):
        x, y = make_faces(n, seed + k)
        for i, (img, lab) in enumerate(zip(x, y)):
            d = root / folder / FER2013_LABELS[lab]
            d.mkdir(parents=True, exist_ok=True)
            if folder == "train":
                name = f"Training_{i}.png"
            elif kaggle_names:
                name = f"{'PublicTest' if i % 2 else 'PrivateTest'}_{i}.png"
            else:
                name = f"im{i}.png"
            cv2.imwrite(str(d / name), img)
    return root


def make_dataset(n_train: int = 700, n_val: int = 140, n_test: int = 280, seed: int = 0):
    """A synthetic :class:`~fer_edge.data.dataset.Dataset` (``--data synthetic``)."""
    parts = {s: make_faces(n, seed + k) for k, (s, n) in enumerate(
        (("train", n_train), ("val", n_val), ("test", n_test)))}
    return Dataset({s: p[0] for s, p in parts.items()}, {s: p[1] for s, p in parts.items()},
                   "synthetic", notes=["synthetic gratings, not faces: a smoke test only"])


def write_ferplus(path: str | Path, npz_path: str | Path, seed: int = 0,
                  agree: float = 0.7) -> Path:
    """Write a FER+ style ``fer2013new.csv`` for a dataset written by :func:`write_npz`.

    Each row gets 10 votes: mostly for the row's label (the plurality agrees with it on about
    ``agree`` of rows), some for other classes; every 25th row is all not-a-face with no image
    name and every 30th row's plurality is contempt or unknown, as in the real file.
    """
    from fer_edge.data.ferplus import COLUMN_TO_CLASS, VOTE_COLUMNS

    d = np.load(npz_path)
    labels, usage = d["labels"], d["usage"]
    rng = np.random.default_rng(seed)
    col_of = {c: j for j, c in enumerate(COLUMN_TO_CLASS)}
    names = ("Training", "PublicTest", "PrivateTest")
    lines = ["Usage,Image name," + ",".join(VOTE_COLUMNS)]
    for i, (lab, u) in enumerate(zip(labels, usage)):
        v = np.zeros(len(VOTE_COLUMNS), int)
        name = f"fer{i:07d}.png"
        if i % 25 == 24:
            v[9], name = 10, ""
        elif i % 30 == 29:
            v[7 + (i // 30) % 2] = 6
            v[col_of[int(lab)]] = 4
        else:
            top = col_of[int(lab)] if rng.random() < agree else int(rng.integers(0, 7))
            v[top] = 6
            for j in rng.integers(0, 7, 4):
                v[j] += 1
        lines.append(f"{names[int(u)]},{name}," + ",".join(map(str, v)))
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
