"""Loss modules with PyTorch's names, constructor arguments and defaults, each over its
functional form in ``netcl.nn.functional.losses``.

Like torch's, they take no queue: a class ``weight`` or ``pos_weight`` is a
Tensor already on its device, kept as a buffer (in ``state_dict`` under
torch's name). torch's deprecated ``size_average`` and ``reduce`` keep their
places, so positional calls mean what they mean in torch, but only None is
accepted: ``reduction`` says the same.
"""

from __future__ import annotations

from netcl.core.tensor import Tensor
from netcl.nn.functional.losses import (
    TargetLike,
    binary_cross_entropy_with_logits,
    check_reduction,
    cross_entropy,
    mse_loss,
    nll_loss,
)
from netcl.nn.module import Module


class _Loss(Module):
    """Checks ``reduction`` (and the legacy arguments) once, when the loss is made."""

    def __init__(self, size_average: bool | None, reduce: bool | None, reduction: str) -> None:
        super().__init__()
        check_reduction(type(self).__name__, reduction, size_average, reduce)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class _ClassLoss(_Loss):
    """A loss over class targets: torch's ``weight`` (one a class) and ``ignore_index``."""

    weight: Tensor | None

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index


class NLLLoss(_ClassLoss):
    """``functional.nll_loss`` as a module: log-probabilities against class indices."""

    def forward(self, input: Tensor, target: TargetLike) -> Tensor:
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                        reduction=self.reduction)


class CrossEntropyLoss(_ClassLoss):
    """``functional.cross_entropy`` as a module: class indices or class probabilities.

    >>> import netcl.core.tensor as nt
    >>> loss = CrossEntropyLoss(label_smoothing=0.1)
    >>> round(loss(nt.tensor([[2.0, 0.0, 0.0]]), nt.tensor([0])).item(), 4)  # torch's too
    0.3729
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: TargetLike) -> Tensor:
        return cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)


class MSELoss(_Loss):
    """``functional.mse_loss`` as a module: (input - target)^2, reduced."""

    def __init__(
        self, size_average: bool | None = None, reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return mse_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """``functional.binary_cross_entropy_with_logits`` as a module (``weight`` per element,
    broadcast; ``pos_weight`` per class on the last axis)."""

    weight: Tensor | None
    pos_weight: Tensor | None

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: Tensor | None = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy_with_logits(input, target, self.weight,
                                                reduction=self.reduction,
                                                pos_weight=self.pos_weight)
