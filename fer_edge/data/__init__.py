"""FER-2013 data: readers for every layout users have, splits, imbalance helpers. Light tier."""

from fer_edge.data.dataset import Dataset
from fer_edge.data.readers import load_dataset, load_dataset_for

__all__ = ["Dataset", "load_dataset", "load_dataset_for"]
