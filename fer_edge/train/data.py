"""The faces a training config names, read in the light tier. Light tier (numpy + OpenCV).

``fer-edge train`` reads them before TensorFlow loads, so a bad ``--data`` is reported in a
second, on a light install too, and never after a 20 s import.
"""

from __future__ import annotations

import logging

from fer_edge.data import Dataset, load_dataset
from fer_edge.errors import ConfigError, DataError
from fer_edge.train.config import TrainConfig

log = logging.getLogger(__name__)


def read_training_data(cfg: TrainConfig) -> Dataset:
    """``cfg.data`` with its train/val/test splits (val carved per ``cfg.val_fraction`` and
    ``cfg.seed`` where the layout has none); a folder set's own classes with ``--init``.

    Raises:
        DataError: one line naming the file and the problem.
    """
    log.info("reading data: %s", cfg.data)
    return load_dataset(cfg.data, val_fraction=cfg.val_fraction, seed=cfg.seed,
                        skip_bad=cfg.skip_bad, skip_unknown_classes=cfg.skip_unknown_classes,
                        own_classes=bool(cfg.init))


def check_training_faces(cfg: TrainConfig, ds: Dataset) -> None:
    """The training faces (after ``--limit``) can train this config: every class has some
    (FER-2013 labels; soft FER+ targets are checked by the class weights) and the batch is
    no larger than the faces.

    Raises:
        DataError: a class without a training face, named, with the fix.
        ConfigError: ``--batch-size`` larger than the training faces.
    """
    import numpy as np

    y = ds.labels["train"][:cfg.limit] if cfg.limit > 0 else ds.labels["train"]
    limited = f" after --limit {cfg.limit}" if cfg.limit > 0 else ""
    if cfg.labels == "fer2013":
        counts = np.bincount(y, minlength=len(ds.class_names))
        empty = [ds.class_names[c] for c in np.flatnonzero(counts == 0)]
        if empty:
            raise DataError(
                f"{cfg.data}: no training face of {', '.join(empty)}{limited} ({len(y)} "
                f"faces of {len(ds.class_names) - len(empty)} classes); a classifier learns "
                "only the classes it sees: add faces of "
                f"{'that class' if len(empty) == 1 else 'those classes'} (a <class>/ folder "
                "of images each, or rows with those labels)"
                + (", or raise --limit" if cfg.limit > 0 else ""))
    if cfg.batch_size > len(y):
        raise ConfigError(f"--batch-size {cfg.batch_size} is larger than the {len(y)} "
                          f"training faces{limited}; choose at most {len(y)}")
