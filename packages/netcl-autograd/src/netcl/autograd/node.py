"""Node: one op as the tape recorded it, which the tape walks and the rules read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netcl.core.tensor import Tensor


@dataclass(eq=False)
class Node:
    """One recorded op: what backward needs to push a gradient from ``output`` to ``inputs``.

    ``saved`` is exactly what the op handed to the recorder (operands, axes,
    shapes, indices); the rule for ``op`` in ``netcl.autograd.rules`` reads it.
    """

    op: str
    inputs: tuple[Tensor, ...]
    output: Tensor
    saved: Mapping[str, Any]
