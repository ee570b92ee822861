"""The faces a training config names, read in the light tier. Light tier (numpy + OpenCV).

``fer-edge train`` reads them before TensorFlow loads, so a bad ``--data`` is reported in a
second, on a light install too, and never after a 20 s import.
"""

from __future__ import annotations

import logging

from fer_edge.config import TrainConfig
from fer_edge.data import Dataset, load_dataset

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
