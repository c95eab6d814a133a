"""netcl.data: the DataLoader and datasets that need no network.

``DataLoader(dataset, batch_size, shuffle, drop_last, seed, device)`` yields
``(x, y)`` Tensors; ``load_dataset("digits" | "mnist5k" | "idx", data_dir)``
gives a dataset's train and test splits; ``read_idx`` reads one IDX file.
"""

from netcl.data.datasets import NAMES, ArrayDataset, Splits, digits, idx, load_dataset, mnist5k
from netcl.data.idx import read_idx
from netcl.data.loader import DataLoader

__all__ = [
    "NAMES", "ArrayDataset", "DataLoader", "Splits", "digits", "idx", "load_dataset", "mnist5k",
    "read_idx",
]
