"""The in-memory dataset every reader returns: :class:`Dataset` (faces and labels per split).
Light tier (numpy).

Below the readers (:mod:`fer_edge.data.readers`) and the synthetic data
(:mod:`fer_edge.data.synthetic`), which both build one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fer_edge.spec import FER2013_LABELS

#: the splits: ``train`` (FER-2013 Training), ``val`` (PublicTest), ``test`` (PrivateTest)
SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """Faces and labels per split.

    Attributes:
        images: split -> (N, 48, 48) uint8 grey faces.
        labels: split -> (N,) int64 class ids (FER-2013 order).
        source: where the data came from.
        skipped: number of bad rows/files dropped with ``skip_bad``.
        notes: how the splits were made.
        rows: split -> (N,) int64 row of each face in the source file (csv/npz layouts, whose
            rows FER+ labels follow); empty for folder layouts.
        n_rows: number of face rows in the source file (csv/npz), 0 otherwise.
        targets: split -> (N, 7) float32 training targets (soft labels, e.g. FER+ votes);
            empty = one-hot of ``labels``.
        class_names: class names in id order (FER-2013's, or a folder set's own with
            ``own_classes``).
    """

    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    source: str
    skipped: int = 0
    notes: list[str] = field(default_factory=list)
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    n_rows: int = 0
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    class_names: tuple[str, ...] = FER2013_LABELS

    def take(self, split: str, idx: np.ndarray) -> None:
        """Keep only faces ``idx`` (int indices or bool mask) of ``split``, in every array."""
        for d in (self.images, self.labels, self.rows, self.targets):
            if split in d:
                d[split] = d[split][idx]

    def counts(self, split: str) -> np.ndarray:
        """(num_classes,) int64 number of faces per class in ``split``."""
        return np.bincount(self.labels[split], minlength=len(self.class_names))

    def summary(self) -> str:
        parts = [f"{s} {len(self.labels[s])}" for s in SPLITS if s in self.labels]
        return f"{self.source}: " + ", ".join(parts)
