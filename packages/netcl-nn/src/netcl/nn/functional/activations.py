"""Activation functions and (log-)softmax, composed from the tensor layer's ops."""

from __future__ import annotations

import math

from netcl.autograd import no_grad
from netcl.core.tensor import Tensor, ops
from netcl.core.tensor.autocast import to_float32

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0); its gradient at 0 is 0.

    ``inplace`` is taken for PyTorch's code (``nn.ReLU(inplace=True)`` in every
    torchvision ResNet) and computed out of place: the value returned is the
    same, but netcl's autograd records out-of-place ops only, so ``x`` is left
    unchanged. Use the returned tensor, as such code does; code that relies on
    ``x`` being overwritten does not carry over. The same holds for ``silu``'s
    and ``leaky_relu``'s ``inplace``.
    """
    return ops.relu(x)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x))."""
    return ops.sigmoid(x)


def tanh(x: Tensor) -> Tensor:
    return ops.tanh(x)


def silu(x: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (SiLU, or swish; Elfwing et al., 2017); ``inplace`` computes out of
    place, leaving ``x`` unchanged (see ``relu``)."""
    return ops.mul(x, ops.sigmoid(x))


def leaky_relu(x: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, else ``negative_slope`` * x; its gradient at 0 is ``negative_slope``,
    as PyTorch's. ``inplace`` computes out of place, leaving ``x`` unchanged (see ``relu``)."""
    return ops.where(ops.gt(x, 0.0), x, ops.mul(x, negative_slope))


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU(x) = x * Phi(x), Phi the standard normal CDF (Hendrycks and Gimpel, 2016).

    ``approximate="none"`` (PyTorch's default) is exact: 0.5 x (1 + erf(x / sqrt 2)).
    ``"tanh"`` is 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    """
    if approximate == "none":
        inner = ops.erf(ops.mul(x, _SQRT1_2))
    elif approximate == "tanh":
        cubic = ops.add(x, ops.mul(ops.mul(ops.mul(x, x), x), 0.044715))
        inner = ops.tanh(ops.mul(cubic, _SQRT_2_OVER_PI))
    else:
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return ops.mul(ops.mul(x, 0.5), ops.add(inner, 1.0))


def log_softmax(x: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """y - logsumexp(y) along ``axis`` (or PyTorch's ``dim``), y = x - max(x): stable for any
    magnitude of x.

    Subtracting logsumexp(x) from x directly keeps only float32's spacing at |x|
    (two tied logits of 1e4 gave -0.69336, of 1e8 gave 0); y's largest entry is
    exactly 0 and its logsumexp lies in [0, log n]. The shift is a constant of
    the gradient (log_softmax is invariant to it), so it is not recorded; a row
    whose max is infinite or NaN is not shifted, as logsumexp does not shift it.
    Float32 under autocast (PyTorch's float32 list).
    """
    if dim is not None:
        if axis != -1:
            raise TypeError(f"log_softmax: got both axis={axis} and dim={dim}; they are one "
                            "argument")
        axis = dim
    (x,) = to_float32(x)
    with no_grad():
        top = ops.max(x, axis, keepdims=True)
        shift = ops.where(ops.lt(ops.abs(top), math.inf), top, 0.0)
    y = ops.sub(x, shift)
    return ops.sub(y, ops.logsumexp(y, axis, keepdims=True))


def softmax(x: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis`` (or ``dim``), as exp(log_softmax(x)) so it never
    overflows."""
    return ops.exp(log_softmax(x, axis, dim=dim))
