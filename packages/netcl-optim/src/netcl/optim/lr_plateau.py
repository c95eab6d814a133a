"""ReduceLROnPlateau, with the semantics of ``torch.optim.lr_scheduler.ReduceLROnPlateau``.

Kept apart from :mod:`netcl.optim.lr_scheduler` (which re-exports it) because it steps on a
metric rather than on epochs, so it is not an ``LRScheduler`` and can't be chained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, SupportsFloat

from netcl.optim.scheduler_checks import (
    HasParamGroups,
    int_at_least,
    load_checked,
    number,
    require,
    step_epoch,
    unchanged_on_error,
)

__all__ = ["ReduceLROnPlateau"]


class ReduceLROnPlateau:
    r"""Multiplies the lr by ``factor`` once a metric has stopped improving.

    A metric :math:`a` improves on the best so far, :math:`b`, when (mode ``min``)
    :math:`a < b (1 - \mathrm{threshold})` (``rel``) or :math:`a < b - \mathrm{threshold}`
    (``abs``); mode ``max`` mirrors this with :math:`a > b (1 + \mathrm{threshold})` and
    :math:`a > b + \mathrm{threshold}`. After more than ``patience`` steps without improvement
    each group's lr becomes :math:`\max(\eta \cdot \mathrm{factor}, \mathrm{min\_lr})`, unless
    that changes it by no more than ``eps``; then ``cooldown`` steps pass without counting.

    Args:
        optimizer: object with ``param_groups``.
        mode: ``"min"`` or ``"max"``. Default: ``"min"``.
        factor: multiplicative factor of the reduction, < 1. Default: 0.1.
        patience: steps without improvement tolerated before reducing. Default: 10.
        threshold: minimal change that counts as improvement. Default: 1e-4.
        threshold_mode: ``"rel"`` or ``"abs"``. Default: ``"rel"``.
        cooldown: steps after a reduction during which bad steps are not counted. Default: 0.
        min_lr: lower bound on the lr, or one per param group. Default: 0.
        eps: smallest lr change applied. Default: 1e-8.

    >>> from types import SimpleNamespace
    >>> optimizer = SimpleNamespace(param_groups=[{"lr": 1.0}])
    >>> scheduler = ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    >>> for loss in (1.0, 1.0, 1.0):  # no improvement after the first
    ...     scheduler.step(loss)
    >>> optimizer.param_groups[0]["lr"]
    0.25
    """

    def __init__(
        self,
        optimizer: HasParamGroups,
        mode: Literal["min", "max"] = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: Literal["rel", "abs"] = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0,
        eps: float = 1e-8,
    ) -> None:
        n_groups = len(optimizer.param_groups)
        self.default_min_lr: float | None
        if isinstance(min_lr, Sequence):
            if len(min_lr) != n_groups:
                raise ValueError(
                    f"min_lr must have one value per param group ({n_groups}), got {min_lr}"
                )
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * n_groups
        self.optimizer = optimizer
        self.mode = mode
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.eps = eps
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.last_epoch = 0
        self._last_lr: list[float] = [group["lr"] for group in optimizer.param_groups]
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0
        self._check()

    def _check(self) -> None:
        """Raise ValueError naming an attribute that holds no valid value."""
        number("factor", self.factor)
        require(self.factor < 1.0, f"factor must be < 1.0, got {self.factor}")
        require(self.mode in ("min", "max"), f"mode must be 'min' or 'max', got {self.mode!r}")
        require(
            self.threshold_mode in ("rel", "abs"),
            f"threshold_mode must be 'rel' or 'abs', got {self.threshold_mode!r}",
        )
        int_at_least("patience", self.patience, 0)
        int_at_least("cooldown", self.cooldown, 0)
        int_at_least("cooldown_counter", self.cooldown_counter, 0)
        int_at_least("num_bad_epochs", self.num_bad_epochs, 0)
        int_at_least("last_epoch", self.last_epoch, -1)
        number("threshold", self.threshold)
        number("eps", self.eps)
        for min_lr in self.min_lrs:
            number("min_lr", min_lr)
        require(isinstance(self.best, float | int) and not isinstance(self.best, bool),
                f"best must be a number, got {self.best!r}")  # inf before the first step

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, current: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return current < self.best * (1.0 - self.threshold)
        if self.mode == "min":
            return current < self.best - self.threshold
        if self.threshold_mode == "rel":
            return current > self.best * (self.threshold + 1.0)
        return current > self.best + self.threshold

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:
        """Record one value of the monitored metric and reduce the lr if it has plateaued."""
        try:
            current = float(metrics)
        except (TypeError, ValueError):
            raise ValueError(
                f"ReduceLROnPlateau.step: metrics must be a number, got {metrics!r}"
            ) from None
        step_epoch("ReduceLROnPlateau.step", epoch)
        with unchanged_on_error(self):
            self._record(current, epoch)

    def _record(self, current: float, epoch: int | None) -> None:
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during cooldown don't count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            # A param group was added since construction; a scalar min_lr still applies.
            if self.default_min_lr is None:
                raise ValueError(
                    f"min_lr has {len(self.min_lrs)} values but the optimizer now has "
                    f"{len(groups)} param groups; update min_lrs"
                )
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs, strict=True):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    def get_last_lr(self) -> list[float]:
        """The lrs after the latest step, one per param group."""
        return self._last_lr

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer."""
        return {key: value for key, value in vars(self).items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore attributes saved by :meth:`state_dict`, each checked; all or nothing."""
        load_checked(self, state_dict, self.__dict__.update)
