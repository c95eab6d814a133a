"""Process-wide switches for how products are computed, named as in PyTorch.

``set_float32_matmul_precision`` is ``torch.set_float32_matmul_precision``, and
``matmul.allow_tf32`` is ``torch.backends.cuda.matmul.allow_tf32``: two views of
one setting. It is off by default ("highest"), so float32 stays float32. Turned
on, float32 matmul (and the batched and 1-D forms) may run on tensor cores in
TF32: each input is rounded to a 10-bit mantissa (relative error at most
2**-11) and the products are summed in float32. Only devices with tensor cores
the kernels can reach (NVIDIA compute capability 8.0 or more) change their
results; everywhere else float32 is computed as before, bit for bit.

``cudnn.allow_tf32`` is ``torch.backends.cudnn.allow_tf32``: the same for
float32 convolutions (conv2d and its gradients), a setting of its own. Unlike
torch's, it is off by default: netcl's rule is that float32 stays float32
until asked otherwise, for convolutions as for matmul.

>>> from netcl.core.tensor import backends
>>> backends.get_float32_matmul_precision()
'highest'
>>> backends.matmul.allow_tf32 = True
>>> backends.get_float32_matmul_precision()
'high'
>>> backends.set_float32_matmul_precision("highest")
>>> backends.matmul.allow_tf32
False
"""

from __future__ import annotations

__all__ = ["cudnn", "get_float32_matmul_precision", "matmul", "set_float32_matmul_precision"]

PRECISIONS = ("highest", "high", "medium")
_precision = "highest"
_conv_tf32 = False


def set_float32_matmul_precision(precision: str) -> None:
    """Set the float32 matmul precision: "highest" (float32 throughout, the
    default), "high" or "medium" (TF32 tensor cores allowed; netcl has no
    bfloat16-split mode, so "medium" computes as "high"). As in PyTorch."""
    global _precision
    if precision not in PRECISIONS:
        raise ValueError(
            f"set_float32_matmul_precision: precision must be one of {PRECISIONS}, "
            f"got {precision!r}"
        )
    _precision = precision


def get_float32_matmul_precision() -> str:
    """The current float32 matmul precision: "highest", "high" or "medium"."""
    return _precision


def tf32_allowed() -> bool:
    """Whether float32 products may use TF32 tensor cores."""
    return _precision != "highest"


def conv_tf32_allowed() -> bool:
    """Whether float32 convolutions may use TF32 tensor cores."""
    return _conv_tf32


def _check_bool(name: str, allowed: object) -> None:
    if not isinstance(allowed, bool):
        raise TypeError(f"{name} must be a bool, got {type(allowed).__name__}")


class _MatmulFlags:
    """``torch.backends.cuda.matmul``'s ``allow_tf32``, over the precision above."""

    @property
    def allow_tf32(self) -> bool:
        return tf32_allowed()

    @allow_tf32.setter
    def allow_tf32(self, allowed: bool) -> None:
        _check_bool("matmul.allow_tf32", allowed)
        set_float32_matmul_precision("high" if allowed else "highest")


class _CudnnFlags:
    """``torch.backends.cudnn``'s ``allow_tf32``, for float32 convolutions."""

    @property
    def allow_tf32(self) -> bool:
        return _conv_tf32

    @allow_tf32.setter
    def allow_tf32(self, allowed: bool) -> None:
        global _conv_tf32
        _check_bool("cudnn.allow_tf32", allowed)
        _conv_tf32 = allowed


matmul = _MatmulFlags()
cudnn = _CudnnFlags()
