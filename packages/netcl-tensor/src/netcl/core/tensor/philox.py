"""Random numbers drawn on the device: Philox4x32-10, whose seed and offset are live.

A counter-based generator needs no state on the device: the n-th block of four
draws is a pure function of (seed, offset + n). A draw of ``k`` numbers takes
the next ``ceil(k / 4)`` blocks and moves ``offset`` past them; the kernel reads
``seed`` and ``offset`` when it is launched (``Live`` arguments) and the move is
host work (``host_effect``), so a captured step (netcl.jit) draws fresh numbers
at every replay, the same ones the eager steps would have drawn from the same
seed. ``manual_seed`` in :mod:`netcl.core.tensor.creation` seeds it.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor import dtypes
from netcl.core.tensor.dispatch import empty
from netcl.core.tensor.launch import Live, host_effect, launch
from netcl.core.tensor.tensor import Tensor

KERNEL_FILE = Path(__file__).with_name("philox.cl")
_WORDS = 2**64


class _Stream:
    """The generator's whole state: a 64-bit key and a 64-bit block counter."""

    def __init__(self) -> None:
        self.seed = secrets.randbits(64)
        self.offset = 0

    def advance(self, blocks: int) -> None:
        self.offset = (self.offset + blocks) % _WORDS


_stream = _Stream()
_SEED = Live(lambda: np.uint64(_stream.seed))
_OFFSET = Live(lambda: np.uint64(_stream.offset))


def seed(value: int) -> None:
    """Key the stream by ``value`` (mod 2**64) and start it from its first block."""
    _stream.seed = int(value) % _WORDS
    _stream.offset = 0


def get_state() -> dict[str, int]:
    return {"seed": _stream.seed, "offset": _stream.offset}


def checked_state(state: object) -> dict[str, int]:
    """``state`` if it is one :func:`get_state` could have returned, else ValueError."""
    if not (isinstance(state, dict) and set(state) == {"seed", "offset"} and all(
            type(v) is int and 0 <= v < _WORDS for v in state.values())):
        raise ValueError(
            f"set_rng_state: the device generator's state must be {{'seed': int, 'offset': "
            f"int}}, each in [0, 2**64), got {state!r}"
        )
    return state


def set_state(state: dict[str, int]) -> None:
    """Put back a state :func:`checked_state` accepted."""
    _stream.seed, _stream.offset = state["seed"], state["offset"]


def uniform(shape: Sequence[int], device: Device) -> Tensor:
    """float32 uniform on [0, 1), drawn on ``device`` from the stream's next blocks."""
    out = empty(shape, dtypes.float32, device)
    blocks = math.ceil(out.size / 4)
    kernel = device.kernels.kernel(KERNEL_FILE, "uniform")
    launch(device, kernel, blocks, out.buffer, np.int64(out.size), _SEED, _OFFSET)
    host_effect(lambda: _stream.advance(blocks))
    return out
