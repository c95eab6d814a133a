"""What an op tells a launch observer about a launch, beyond its arguments.

A capture (netcl-jit) fuses runs of elementwise launches into one generated
kernel and computes them inside a following reduction; for that it needs to
know what each launch computes and which elements it touches. The op that
launches builds one of these only while an observer is installed, and passes
it as ``about`` to :func:`netcl.core.tensor.launch.enqueue`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Operand:
    """A tensor a launch reads or writes: element ``offset`` and ``strides`` (one per
    dimension of the launch's ``dims``) into ``buffer``, holding ``dtype``."""

    buffer: Any
    offset: int
    strides: tuple[int, ...]
    dtype: np.dtype[Any]


@dataclass(frozen=True, slots=True)
class ElementwiseLaunch:
    """A launch of ``elementwise.cl``: ``expr`` in ``a``, ``b``, ``c``, computed in the C type
    ``compute`` over ``n`` elements laid out as ``dims`` (row-major, size-1 dimensions
    dropped: empty for one element), stored into ``out`` as ``out.dtype``.

    ``operands`` holds, per slot, an :class:`Operand` or the kernel argument passed
    for a scalar (bytes or a numpy scalar of the compute type, or a ``Live``).
    """

    expr: str
    compute: str
    n: int
    dims: tuple[int, ...]
    out: Operand
    operands: tuple[Any, ...]

    def tensors(self) -> list[Operand]:
        return [x for x in self.operands if isinstance(x, Operand)]


@dataclass(frozen=True, slots=True)
class ReductionLaunch:
    """A launch of ``reduce_rows`` or ``reduce_cols`` (``file``, built with ``defines``): it
    reads ``count`` contiguous elements of ``input`` (its argument ``input_arg``) from
    ``input.offset``, each as the C type ``load_type``. ``reduce.cl`` lets a capture redefine its
    ``LOAD(i)`` and add parameters (``EXTRA_PARAMS``)."""

    file: Path
    defines: Mapping[str, str | int]
    input_arg: int
    input: Operand
    count: int
    load_type: str
