"""Choices of the tensor-core convolution (gemm._mma_conv) that only a GPU can judge.

Each is off (today's kernel) in ``CONV_OPTIONS`` until tools/bench/conv_tensor_cores.py
``--variants`` shows on the device that it wins; the bench runs each candidate inside
``conv_options``. None of them changes what is computed: the wide gather reads the same
elements (the same bits), the weight gradient's split and tile change only the order
of its float32 sums (both orders fixed, both within the same rounding bound).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from netcl.core.tensor.ops.matmul_tiles import MmaTile


@dataclass(frozen=True)
class ConvOptions:
    """``wide_gather``: where the geometry allows (unit stride along rows, rows of whole
    16-byte vectors, 16-byte aligned), the convolution's input (or output gradient) is
    read 16 bytes at a time and shifted into place, not one element at a time (all three
    passes). ``dw_per_unit``: work-groups the weight gradient aims at per compute unit
    (its groups of images, each summed into a float32 slab, then the slabs summed).
    ``dw_split_images``: those groups may split an image's K (output positions) at any
    BK step, so there can be more groups than images. ``dw_tile``: the weight gradient's
    tile (None: the one gemm._conv_tile picks)."""

    wide_gather: bool = False
    dw_per_unit: int = 2
    dw_split_images: bool = False
    dw_tile: MmaTile | None = None

    def __post_init__(self) -> None:
        for field in ("wide_gather", "dw_split_images"):
            value = getattr(self, field)
            if type(value) is not bool:  # "no" or 1.0 would turn it on
                raise TypeError(
                    f"ConvOptions: {field} must be a bool, got {type(value).__name__} {value!r}"
                )
        if self.dw_tile is not None and not isinstance(self.dw_tile, MmaTile):
            raise TypeError(
                f"ConvOptions: dw_tile must be an MmaTile or None (the weight gradient's "
                f"tile), got {type(self.dw_tile).__name__} {self.dw_tile!r}"
            )
        if isinstance(self.dw_per_unit, bool) or not isinstance(self.dw_per_unit, int) or (
                self.dw_per_unit < 1):
            raise ValueError(
                f"ConvOptions: dw_per_unit must be an int >= 1 (work-groups per compute "
                f"unit), got {self.dw_per_unit!r}"
            )

    @property
    def name(self) -> str:
        parts = [f"{self.dw_per_unit}/cu"] + ["split"] * self.dw_split_images
        parts += ["wide"] * self.wide_gather
        if self.dw_tile is not None:
            parts.append(self.dw_tile.name)
        return " ".join(parts)


# What every convolution takes: today's kernel.
CONV_OPTIONS = ConvOptions()
_options: ContextVar[ConvOptions | None] = ContextVar("netcl_conv_options", default=None)


def current() -> ConvOptions:
    """The options of a convolution launched now: ``conv_options``' if one is open."""
    return _options.get() or CONV_OPTIONS


@contextmanager
def conv_options(options: ConvOptions) -> Iterator[None]:
    """Convolutions on tensor cores launched within this block take ``options``
    (a ContextVar: a block opened on one thread does not reach another's)."""
    if not isinstance(options, ConvOptions):
        raise TypeError(f"conv_options takes a ConvOptions, got {type(options).__name__}")
    token = _options.set(options)
    try:
        yield
    finally:
        _options.reset(token)
