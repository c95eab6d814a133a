"""Hyperparameter checks shared by the optimizer classes and the functional forms.

Each check raises ``ValueError`` naming the argument, the value given and what
was expected, at the call that received it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import NoReturn


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


def unit_interval(owner: str, name: str, value: object, *, closed: bool) -> float:
    """A real number in [0, 1) (betas), or [0, 1] when ``closed`` (alpha)."""
    number = _real(value)
    if number is None or not (0 <= number <= 1 if closed else 0 <= number < 1):
        _fail(owner, name, value, "0 <= value <= 1" if closed else "0 <= value < 1")
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
    return bool(value)


def betas(owner: str, value: object) -> tuple[float, float]:
    """A pair (beta1, beta2), each in [0, 1)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        _fail(owner, "betas", value, "a pair (beta1, beta2)")
    return (
        unit_interval(owner, "beta1 (betas[0])", value[0], closed=False),
        unit_interval(owner, "beta2 (betas[1])", value[1], closed=False),
    )
