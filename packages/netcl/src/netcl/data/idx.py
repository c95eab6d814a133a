"""The IDX file format of MNIST and Fashion-MNIST: read one file into a numpy array.

Layout (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"): two zero
bytes, a type byte, a dimension count byte, one big-endian uint32 per
dimension, then the values, big-endian, row-major. ``.gz`` files are read
through gzip.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# The type byte: numpy's big-endian dtype for it.
_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray[Any, Any]:
    """The array stored in the IDX file ``path`` (native byte order).

    Raises FileNotFoundError for a missing file and ValueError naming the
    path and what is wrong for a damaged one: a bad magic number, an unknown
    type, or a header whose dimensions do not match the file's length.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no IDX file at {path}")
    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = _read_promised(f)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: not a readable gzip file ({error})") from None
    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} bytes, too short for an IDX header (4 bytes)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file (it must start with two zero bytes, starts with "
            f"{data[:4].hex(' ')})"
        )
    code, ndim = data[2], data[3]
    if code not in _TYPES:
        known = ", ".join(f"0x{c:02X}" for c in _TYPES)
        raise ValueError(f"{path}: unknown IDX type byte 0x{code:02X} (known: {known})")
    start = 4 + 4 * ndim
    if ndim == 0 or len(data) < start:
        raise ValueError(
            f"{path}: the header names {ndim} dimensions, which needs {start} header bytes; "
            f"the file has {len(data)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4))
    dtype = np.dtype(_TYPES[code])
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - start != expected:
        held = "more" if len(data) - start > expected else str(len(data) - start)
        raise ValueError(
            f"{path}: the header says shape {shape} of {dtype.name} ({expected} bytes of "
            f"data), the file holds {held}"
        )
    return np.frombuffer(data, dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))


def _read_promised(f: BinaryIO) -> bytes:
    """The header, then at most the bytes it promises plus one (one more says "too long"):
    a small .gz that would inflate to gigabytes is never inflated further. A header that
    is cut short or names an unknown type reads no data; read_idx reports it."""
    head = f.read(4)
    if len(head) < 4 or head[2] not in _TYPES:
        return head
    dims = f.read(4 * head[3])
    shape = np.frombuffer(dims, ">u4", len(dims) // 4)
    promised = math.prod(int(d) for d in shape) * np.dtype(_TYPES[head[2]]).itemsize
    return head + dims + f.read(promised + 1)
