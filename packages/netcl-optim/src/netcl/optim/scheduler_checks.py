"""What every learning-rate scheduler checks, and how its steps and loads stay all-or-nothing.

A scheduler's numbers are checked where they enter (the constructor, ``load_state_dict``)
with a ValueError naming the argument and its value. ``step`` and ``load_state_dict``
run under ``unchanged_on_error``: if they raise, the scheduler's attributes (its children's
too) and the optimizer's param groups are put back as they were, so a bad call can be
corrected and training goes on.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise
from typing import Any, Protocol


class HasParamGroups(Protocol):
    """Anything with optimizer-style parameter groups; every group holds at least ``"lr"``."""

    @property
    def param_groups(self) -> list[dict[str, Any]]: ...


class Checked(Protocol):
    """A scheduler: an optimizer, a state dict, and a check of its own attributes."""

    optimizer: HasParamGroups

    def state_dict(self) -> dict[str, Any]: ...

    def _check(self) -> None: ...


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def is_number(value: object) -> bool:
    """A finite real number; a bool or a string of digits is not one."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def number(name: str, value: object) -> None:
    require(is_number(value), f"{name} must be a finite number, got {value!r}")


def positive(name: str, value: object) -> None:
    require(is_number(value) and value > 0,  # type: ignore[operator]
            f"{name} must be a positive number, got {value!r}")


def int_at_least(name: str, value: object, low: int) -> None:
    require(isinstance(value, int) and not isinstance(value, bool) and value >= low,
            f"{name} must be an int >= {low}, got {value!r}")


def positive_int(name: str, value: object) -> None:
    require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
            f"{name} must be a positive int, got {value!r}")


def increasing(name: str, values: Iterable[int]) -> list[int]:
    out = list(values)
    require(all(isinstance(v, int) and not isinstance(v, bool) for v in out)
            and all(a < b for a, b in pairwise(out)),
            f"{name} must be increasing ints, got {out}")
    return out


def per_group(name: str, value: float | Sequence[float], n_groups: int) -> list[float]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        values = list(value)
        require(len(values) == n_groups, f"{name} needs one value per param group, got {value}")
    else:
        values = [value] * n_groups
    for v in values:
        number(name, v)
    return values


def step_epoch(name: str, epoch: object, fractional: bool = False) -> None:
    """``epoch`` for ``step``: None, or an int (a non-negative number where ``fractional``)."""
    if epoch is None:
        return
    if fractional:
        require(is_number(epoch) and epoch >= 0,  # type: ignore[operator]
                f"{name}: epoch must be a non-negative number or None, got {epoch!r}")
    else:
        int_at_least(f"{name}: epoch", epoch, -1)


@contextmanager
def unchanged_on_error(scheduler: Checked) -> Iterator[None]:
    """Run a block; if it raises, restore the scheduler (and its children) and the groups."""
    restore = _snapshot(scheduler)
    try:
        yield
    except BaseException:
        restore()
        raise


def _snapshot(scheduler: Checked) -> Callable[[], None]:
    # A step rebinds attributes, it does not mutate their values: shallow copies suffice.
    attributes = dict(vars(scheduler))
    children = [_snapshot(c) for c in attributes.get("_schedulers", [])]
    groups = scheduler.optimizer.param_groups
    saved_groups = [dict(group) for group in groups]

    def restore() -> None:
        vars(scheduler).clear()
        vars(scheduler).update(attributes)
        for child in children:
            child()
        for group, saved in zip(groups, saved_groups, strict=True):
            group.clear()
            group.update(saved)

    return restore


def load_checked(
    scheduler: Checked, state_dict: object, apply: Callable[[dict[str, Any]], None]
) -> None:
    """``apply(state_dict)`` after checking its keys; then ``scheduler._check()``; all or nothing.

    A key that is not one of the scheduler's own (``optimizer`` above all: a scheduler
    is rebound by building it over the other optimizer) is a ValueError naming it.
    """
    name = f"{type(scheduler).__name__}.load_state_dict"
    if not isinstance(state_dict, dict):
        raise ValueError(f"{name}: expected a dict, got {type(state_dict).__name__}")
    unexpected = sorted(str(k) for k in set(state_dict) - set(scheduler.state_dict()))
    require(not unexpected,
            f"{name}: unexpected keys {unexpected}; a state dict holds a scheduler's own "
            "attributes (never its optimizer: build the scheduler over the optimizer instead)")
    with unchanged_on_error(scheduler):
        apply(state_dict)
        scheduler._check()
