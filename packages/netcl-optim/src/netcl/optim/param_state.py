"""ParamState: one parameter's optimizer state (its own module: the optimizer and the
flat layout both make and read it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from netcl.core.tensor import Tensor


@dataclass
class ParamState:
    """One parameter's state: float32 buffers on the parameter's device, and its step count.

    ``state[p]["exp_avg"]`` and ``state[p]["step"]`` read as in PyTorch. ``step``
    is None for optimizers that count no steps (SGD, Momentum).

    >>> from netcl.core.tensor import zeros
    >>> st = ParamState({"exp_avg": zeros((3,))}, step=2.0)
    >>> st["step"], st.keys()
    (2.0, ['step', 'exp_avg'])
    """

    buffers: dict[str, Tensor] = field(default_factory=dict)
    step: float | None = None
    #: Numbers kept besides the step (NAdam's ``mu_product``), by PyTorch's names.
    scalars: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Tensor | float:
        if key == "step" and self.step is not None:
            return self.step
        if key in self.scalars:
            return self.scalars[key]
        return self.buffers[key]

    def __contains__(self, key: object) -> bool:
        return (
            (key == "step" and self.step is not None) or key in self.scalars
            or key in self.buffers
        )

    def keys(self) -> list[str]:
        return (["step"] if self.step is not None else []) + list(self.scalars) + list(
            self.buffers
        )
