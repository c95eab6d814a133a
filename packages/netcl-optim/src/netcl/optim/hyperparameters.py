"""Hyperparameters: each algorithm declares its own once, as a frozen dataclass.

A field is declared with :func:`hyperparameter`: its default and the check it
must pass. The same dataclass serves the optimizer class (its defaults, and
every param group checked before a step or a load), the functional form (which
builds one from its keyword arguments) and the kernel (``kernel_scalars``).

Each check raises ``ValueError`` naming the owner (``"Adam param group 1"``),
the argument, the value given and what was expected, at the call that received it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, NoReturn, Self

import numpy as np

Check = Callable[[str, str, Any], Any]


def hyperparameter(default: Any, check: Check) -> Any:
    """A dataclass field with its default and its check (``check(owner, name, value)``)."""
    return field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class Hyperparameters:
    """One param group's hyperparameters, checked; a subclass per algorithm."""

    #: Whether a parameter's state counts its steps (``"step"`` in the state dict).
    counts_steps: ClassVar[bool] = True
    #: Another algorithm's hyperparameters that PyTorch's twin of this one keeps in its
    #: groups, each with the one value that means this algorithm (torch's Adam has
    #: AdamW's decoupled_weight_decay).
    torch_keys: ClassVar[Mapping[str, object]] = {}
    #: Values a saved param group takes for fields it lacks because it was saved before
    #: they existed (as torch's ``__setstate__`` fills in later hyperparameters).
    absent_defaults: ClassVar[Mapping[str, object]] = {}
    #: Numbers a parameter keeps besides its step, with their values on its first step
    #: (PyTorch keeps them as 0-d tensors: NAdam's ``mu_product``).
    scalar_state: ClassVar[Mapping[str, float]] = {}

    @classmethod
    def checked(cls, owner: str, values: Mapping[str, Any]) -> Self:
        """The hyperparameters named in ``values`` (every field; other keys are ignored),
        each passed through its field's check; ValueError names ``owner``."""
        hyper = cls(**{f.name: f.metadata["check"](owner, f.name, values[f.name])
                       for f in fields(cls)})
        hyper.check_together(owner)
        return hyper

    @classmethod
    def foreign(cls, group: Mapping[str, Any]) -> str | None:
        """Why a saved param group is not this algorithm's (None if it is): hyperparameters
        of this algorithm it lacks, or another netcl algorithm's it holds."""
        own = {f.name for f in fields(cls)}
        others = {f.name for kind in _algorithms() if kind is not cls for f in fields(kind)}
        missing = sorted(own - group.keys())
        alien = sorted(
            f"{key}={group[key]!r}" for key in (group.keys() & others) - own
            if key not in cls.torch_keys or group[key] != cls.torch_keys[key]
        )
        if not missing and not alien:
            return None
        return (f"it lacks {missing} and has {alien}" if missing and alien
                else f"it lacks {missing}" if missing else f"it has {alien}")

    def check_together(self, owner: str) -> None:
        """Raise ValueError for a combination of values that is invalid (none by default)."""

    def as_group(self) -> dict[str, Any]:
        """The fields as a param group's entries (PyTorch's names)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def state_names(self) -> tuple[str, ...]:
        """The float32 buffers a parameter keeps under these values (PyTorch's names)."""
        return ()

    def state_shapes(self, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Each state buffer a parameter of ``shape`` keeps, with its shape (the parameter's,
        unless the algorithm keeps less: Adafactor's factored moments)."""
        return dict.fromkeys(self.state_names(), shape)

    def state_dtype(self, name: str) -> np.dtype[Any]:
        """The dtype of state buffer ``name`` (float32 unless the algorithm keeps another:
        8-bit Adam's codes)."""
        return np.dtype(np.float32)

    def initial_value(self, name: str) -> float:
        """The value every element of state buffer ``name`` starts from (0 unless the
        algorithm says otherwise: Adagrad's ``initial_accumulator_value``)."""
        return 0.0

    def step_doubles(self, step: float) -> tuple[float, ...]:
        """Under a GradScaler, what the kernel computes its step-dependent scalars from
        (its STEP_DOUBLES, ``vector_io.cl``): the step count and the hyperparameters
        those scalars need, for the kernel to correct by the steps skipped on the device."""
        return ()

    def advance_scalars(self, step: float, scalars: Mapping[str, float]) -> dict[str, float]:
        """A parameter's ``scalar_state`` values once it reaches ``step``, from ``scalars``
        (their values before it)."""
        return {}


def _algorithms() -> list[type[Hyperparameters]]:
    """Every algorithm's hyperparameter class (each imported with its optimizer)."""
    found, todo = [], list(Hyperparameters.__subclasses__())
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return found


def _real(value: object) -> float | None:
    """``value`` as a float if it is a real number (bool is not one), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _fail(owner: str, name: str, value: object, expected: str) -> NoReturn:
    raise ValueError(f"{owner}: invalid {name}: {value!r} (expected {expected})")


def non_negative(owner: str, name: str, value: object) -> float:
    """A finite real number >= 0 (lr, eps, weight_decay, momentum)."""
    number = _real(value)
    if number is None or not math.isfinite(number) or number < 0:
        _fail(owner, name, value, "a finite number >= 0")
    return number


def below_one(owner: str, name: str, value: object) -> float:
    """A real number in [0, 1) (each beta)."""
    number = _real(value)
    if number is None or not 0 <= number < 1:
        _fail(owner, name, value, "0 <= value < 1")
    return number


def unit_interval(owner: str, name: str, value: object) -> float:
    """A real number in [0, 1] (alpha)."""
    number = _real(value)
    if number is None or not 0 <= number <= 1:
        _fail(owner, name, value, "0 <= value <= 1")
    return number


def finite(owner: str, name: str, value: object) -> float:
    """Any finite real number (dampening)."""
    number = _real(value)
    if number is None or not math.isfinite(number):
        _fail(owner, name, value, "a finite number")
    return number


def flag(owner: str, name: str, value: object) -> bool:
    """True or False (amsgrad, maximize, nesterov, centered)."""
    if not isinstance(value, bool):
        _fail(owner, name, value, "True or False")
    return value


def betas(owner: str, name: str, value: object) -> tuple[float, float]:
    """A pair (beta1, beta2), each in [0, 1)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        _fail(owner, name, value, "a pair (beta1, beta2)")
    return (
        below_one(owner, f"beta1 ({name}[0])", value[0]),
        below_one(owner, f"beta2 ({name}[1])", value[1]),
    )


def one_of(*allowed: object) -> Check:
    """A check that the value is one of ``allowed`` (Muon's adjust_lr_fn)."""

    def check(owner: str, name: str, value: object) -> object:
        if value not in allowed or isinstance(value, bool):
            _fail(owner, name, value, f"one of {', '.join(map(repr, allowed))}")
        return value

    return check


def count_below(limit: int) -> Check:
    """A check that the value is an int in [0, limit) (Muon's ns_steps)."""

    def check(owner: str, name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not (
            0 <= int(value) < limit
        ):
            _fail(owner, name, value, f"an int, 0 <= value < {limit}")
        return int(value)

    return check


def finite_triple(owner: str, name: str, value: object) -> tuple[float, float, float]:
    """Three finite real numbers (Muon's ns_coefficients)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 3:
        _fail(owner, name, value, "three numbers (a, b, c)")
    a, b, c = (finite(owner, f"{name}[{i}]", x) for i, x in enumerate(value))
    return (a, b, c)
