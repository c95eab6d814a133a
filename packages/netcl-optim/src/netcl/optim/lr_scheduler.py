"""Learning-rate schedulers with the semantics of ``torch.optim.lr_scheduler`` (PyTorch 2.13).

A scheduler rewrites ``group["lr"]`` in the ``param_groups`` of any object that has them
(:class:`HasParamGroups`). The arithmetic follows PyTorch's expression for expression, so the
sequences agree with PyTorch's to rounding, including the recursive ("chainable") forms in
which a schedule scales the *current* lr: that is what lets two schedulers drive one optimizer.
Every scheduler takes ``optimizer`` and ``last_epoch`` as :class:`LRScheduler` does.
"""

from __future__ import annotations

import math
import types
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from netcl.optim.lr_plateau import ReduceLROnPlateau as ReduceLROnPlateau
from netcl.optim.scheduler_checks import HasParamGroups as HasParamGroups
from netcl.optim.scheduler_checks import (
    increasing,
    int_at_least,
    load_checked,
    number,
    per_group,
    positive,
    positive_int,
    require,
    step_epoch,
    unchanged_on_error,
)


class _MissingInitialLRError(KeyError, ValueError):
    """PyTorch raises KeyError here; also being a ValueError keeps netcl's bad-argument rule."""

    def __str__(self) -> str:
        return str(self.args[0])


class LRScheduler:
    """Base class: sets every param group's ``"lr"`` on each :meth:`step`.

    Subclasses implement :meth:`get_lr` (the lrs at ``last_epoch``, mostly computed from the
    current ones so that schedules compose) and, where PyTorch has one, :meth:`_closed_form_lr`
    (the lrs at ``last_epoch`` from ``base_lrs``), used by ``step(epoch)`` and by SequentialLR.

    Args:
        optimizer: object with ``param_groups``.
        last_epoch: index of the last epoch. ``-1`` starts afresh and records each group's lr as
            ``"initial_lr"``; any other value resumes and needs ``"initial_lr"`` in every group.

    Every argument is checked (a ValueError names it and its value); :meth:`step` and
    :meth:`load_state_dict` change nothing, here or in the optimizer, when they raise.

    >>> from types import SimpleNamespace
    >>> optimizer = SimpleNamespace(param_groups=[{"lr": 1.0}])  # anything with param_groups
    >>> scheduler = ExponentialLR(optimizer, gamma=0.5)
    >>> scheduler.step()
    >>> scheduler.get_last_lr(), optimizer.param_groups[0]["lr"]
    ([0.5], 0.5)
    """

    def __init__(self, optimizer: HasParamGroups, last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        self.last_epoch = last_epoch
        self._check()
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise _MissingInitialLRError(
                    f"param 'initial_lr' is not specified in param_groups[{i}] when resuming "
                    f"scheduler with last_epoch={last_epoch}; load the optimizer state first"
                )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self._initial_step()

    def _check(self) -> None:
        """Raise ValueError naming an attribute without a valid value; subclasses add theirs."""
        int_at_least("last_epoch", self.last_epoch, -1)

    def _initial_step(self) -> None:
        # The constructor's step moves last_epoch from -1 to 0 (or resumes); schedules that
        # scale the current lr must not apply a factor then, so they check _is_initial.
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The lrs for ``last_epoch`` (already advanced); :meth:`step` applies them."""
        raise NotImplementedError

    def _closed_form_lr(self) -> list[float]:
        return self.get_lr()

    def get_last_lr(self) -> list[float]:
        """The lrs set by the latest step, one per param group."""
        return self._last_lr

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch, or jump to ``epoch`` using the closed form where there is one."""
        step_epoch(f"{type(self).__name__}.step", epoch)
        with unchanged_on_error(self):
            self._step_count += 1
            self._update_lr(epoch)

    def _update_lr(self, epoch: int | None) -> None:
        if epoch is None:
            self.last_epoch += 1
            self._set_lrs(self.get_lr())
        else:
            self.last_epoch = epoch
            self._set_lrs(self._closed_form_lr())

    def _lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def _set_lrs(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self._last_lr = self._lrs()

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer."""
        return {key: value for key, value in vars(self).items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore attributes saved by :meth:`state_dict`, each checked; all or nothing."""
        load_checked(self, state_dict, self.__dict__.update)


class LambdaLR(LRScheduler):
    r"""Scales the initial lr by a function of the epoch: :math:`\eta_t = \eta_0 \lambda(t)`.

    ``lr_lambda`` is one function, or a list with one per param group. :meth:`state_dict` saves
    a lambda only if it is a callable object (its ``__dict__``), not a plain function.

    >>> from types import SimpleNamespace
    >>> scheduler = LambdaLR(SimpleNamespace(param_groups=[{"lr": 1.0}]), lambda e: 1 / (e + 1))
    >>> for _ in range(3):
    ...     scheduler.step()
    >>> scheduler.get_last_lr()
    [0.25]
    """

    def __init__(
        self,
        optimizer: HasParamGroups,
        lr_lambda: Callable[[int], float] | list[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        n_groups = len(optimizer.param_groups)
        if isinstance(lr_lambda, list | tuple):
            require(
                len(lr_lambda) == n_groups,
                f"lr_lambda needs one function per param group ({n_groups}), got {len(lr_lambda)}",
            )
            self.lr_lambdas: list[Callable[[int], float]] = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n_groups
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [
            base * fn(self.last_epoch)
            for fn, base in zip(self.lr_lambdas, self.base_lrs, strict=True)
        ]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["lr_lambdas"] = [
            None if isinstance(fn, types.FunctionType) else fn.__dict__.copy()
            for fn in self.lr_lambdas
        ]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        saved = state.pop("lr_lambdas")
        super().load_state_dict(state)
        for fn, attrs in zip(self.lr_lambdas, saved, strict=True):
            if attrs is not None:
                fn.__dict__.update(attrs)


class StepLR(LRScheduler):
    r"""Multiplies the lr by ``gamma`` (default 0.1) every ``step_size`` epochs.

    .. math:: \eta_t = \eta_0 \, \gamma^{\lfloor t / \mathrm{step\_size} \rfloor}

    >>> from types import SimpleNamespace
    >>> scheduler = StepLR(SimpleNamespace(param_groups=[{"lr": 1.0}]), step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for _ in range(4):
    ...     scheduler.step()
    ...     lrs += scheduler.get_last_lr()
    >>> lrs
    [1.0, 0.5, 0.5, 0.25]
    """

    def __init__(
        self, optimizer: HasParamGroups, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        super()._check()
        positive_int("step_size", self.step_size)
        positive("gamma", self.gamma)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    r"""Multiplies the lr by ``gamma`` (default 0.1) at each of the increasing ``milestones``.

    .. math:: \eta_t = \eta_0 \, \gamma^{|\{m \in \mathrm{milestones} \,:\, m \le t\}|}

    >>> from types import SimpleNamespace
    >>> optimizer = SimpleNamespace(param_groups=[{"lr": 1.0}])
    >>> scheduler = MultiStepLR(optimizer, milestones=[1, 3], gamma=0.5)
    >>> lrs = []
    >>> for _ in range(3):
    ...     scheduler.step()
    ...     lrs += scheduler.get_last_lr()
    >>> lrs
    [0.5, 0.5, 0.25]
    """

    def __init__(
        self,
        optimizer: HasParamGroups,
        milestones: Iterable[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        self.milestones = list(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        super()._check()
        increasing("milestones", self.milestones)
        positive("gamma", self.gamma)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]

    def _closed_form_lr(self) -> list[float]:
        factor = self.gamma ** bisect_right(self.milestones, self.last_epoch)
        return [base * factor for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    r"""Multiplies the lr by ``gamma`` every epoch: :math:`\eta_t = \eta_0 \gamma^t`.

    >>> from types import SimpleNamespace
    >>> scheduler = ExponentialLR(SimpleNamespace(param_groups=[{"lr": 1.0}]), gamma=0.5)
    >>> scheduler.step()
    >>> scheduler.step()
    >>> scheduler.get_last_lr()
    [0.25]
    """

    def __init__(self, optimizer: HasParamGroups, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        super()._check()
        positive("gamma", self.gamma)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [base * self.gamma**self.last_epoch for base in self.base_lrs]


class LinearLR(LRScheduler):
    r"""Scales the lr by a factor going linearly from ``start_factor`` (in (0, 1], default 1/3)
    to ``end_factor`` (in [0, 1], default 1) over ``total_iters`` (default 5) epochs.

    .. math:: \eta_t = \eta_0 \left(s + (e - s) \min(t, T) / T\right)

    applied recursively, as the ratio of consecutive factors.

    >>> from types import SimpleNamespace
    >>> optimizer = SimpleNamespace(param_groups=[{"lr": 1.0}])
    >>> scheduler = LinearLR(optimizer, start_factor=0.5, total_iters=2)
    >>> lrs = scheduler.get_last_lr()
    >>> for _ in range(2):
    ...     scheduler.step()
    ...     lrs += scheduler.get_last_lr()
    >>> lrs
    [0.5, 0.75, 1.0]
    """

    def __init__(
        self,
        optimizer: HasParamGroups,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        super()._check()
        positive("start_factor", self.start_factor)
        require(self.start_factor <= 1, f"start_factor must be in (0, 1], got {self.start_factor}")
        number("end_factor", self.end_factor)
        require(0 <= self.end_factor <= 1, f"end_factor must be in [0, 1], got {self.end_factor}")
        positive_int("total_iters", self.total_iters)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return [lr * self.start_factor for lr in self._lrs()]
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._lrs()
        delta = self.end_factor - self.start_factor
        ratio = 1.0 + delta / (self.total_iters * self.start_factor + (self.last_epoch - 1) * delta)
        return [lr * ratio for lr in self._lrs()]

    def _closed_form_lr(self) -> list[float]:
        delta = self.end_factor - self.start_factor
        factor = (
            self.start_factor + delta * min(self.total_iters, self.last_epoch) / self.total_iters
        )
        return [base * factor for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from the initial lr to ``eta_min`` (default 0) over ``T_max`` epochs
    (SGDR without restarts), updated recursively:

    .. math::
        \eta_{t+1} = \eta_{min} + (\eta_t - \eta_{min})
            \frac{1 + \cos(\pi (t + 1) / T_{max})}{1 + \cos(\pi t / T_{max})}

    Alone, this follows :math:`\eta_t = \eta_{min} + \frac{1}{2}(\eta_0 - \eta_{min})
    (1 + \cos(\pi t / T_{max}))`, which keeps oscillating with period :math:`2 T_{max}` past
    :math:`T_{max}`; chained with other schedulers it scales whatever lr they left.

    >>> from types import SimpleNamespace
    >>> scheduler = CosineAnnealingLR(SimpleNamespace(param_groups=[{"lr": 1.0}]), T_max=2)
    >>> lrs = scheduler.get_last_lr()
    >>> for _ in range(2):
    ...     scheduler.step()
    ...     lrs += scheduler.get_last_lr()
    >>> [round(lr, 6) for lr in lrs]
    [1.0, 0.5, 0.0]
    """

    def __init__(
        self, optimizer: HasParamGroups, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        super()._check()
        positive("T_max", self.T_max)
        number("eta_min", self.eta_min)

    def get_lr(self) -> list[float]:
        t, t_max, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._lrs()
        if self._step_count == 1 and t > 0:
            cos_term = 1 + math.cos(t * math.pi / t_max)
            return [eta_min + (base - eta_min) * cos_term / 2 for base in self.base_lrs]
        if (t - 1 - t_max) % (2 * t_max) == 0:
            # Leaving the minimum, the ratio's denominator 1 + cos(pi) is 0: add the step instead.
            rise = 1 - math.cos(math.pi / t_max)
            return [
                lr + (base - eta_min) * rise / 2
                for lr, base in zip(self._lrs(), self.base_lrs, strict=True)
            ]
        ratio = (1 + math.cos(math.pi * t / t_max)) / (1 + math.cos(math.pi * (t - 1) / t_max))
        return [ratio * (lr - eta_min) + eta_min for lr in self._lrs()]

    def _closed_form_lr(self) -> list[float]:
        cos_term = 1 + math.cos(math.pi * self.last_epoch / self.T_max)
        return [self.eta_min + (base - self.eta_min) * cos_term / 2 for base in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""Cosine annealing with warm restarts (SGDR):

    .. math:: \eta_t = \eta_{min} + \frac{1}{2}(\eta_0 - \eta_{min})(1 + \cos(\pi T_{cur} / T_i))

    :math:`T_{cur}` counts epochs since the last restart; the period :math:`T_i` starts at
    ``T_0`` and is multiplied by ``T_mult`` (default 1) at each restart. ``step(epoch)`` accepts
    a fractional epoch, e.g. ``epoch + batch / n_batches``.

    >>> from types import SimpleNamespace
    >>> optimizer = SimpleNamespace(param_groups=[{"lr": 1.0}])
    >>> scheduler = CosineAnnealingWarmRestarts(optimizer, T_0=2)
    >>> lrs = scheduler.get_last_lr()
    >>> for _ in range(2):
    ...     scheduler.step()
    ...     lrs += scheduler.get_last_lr()
    >>> [round(lr, 6) for lr in lrs]  # a restart at epoch 2
    [1.0, 0.5, 1.0]
    """

    def __init__(
        self,
        optimizer: HasParamGroups,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.T_0 = self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur: float = last_epoch
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        super()._check()
        positive_int("T_0", self.T_0)
        positive_int("T_i", self.T_i)
        int_at_least("T_mult", self.T_mult, 1)
        number("eta_min", self.eta_min)
        number("T_cur", self.T_cur)

    def get_lr(self) -> list[float]:
        cos_term = 1 + math.cos(math.pi * self.T_cur / self.T_i)
        return [self.eta_min + (base - self.eta_min) * cos_term / 2 for base in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        """Advance one epoch, or jump to ``epoch`` (may be fractional)."""
        step_epoch("CosineAnnealingWarmRestarts.step", epoch, fractional=True)
        with unchanged_on_error(self):
            self._advance(epoch)

    def _advance(self, epoch: float | None) -> None:
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        elif epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        elif epoch >= self.T_0 and self.T_mult == 1:
            self.T_cur = epoch % self.T_0
        elif epoch >= self.T_0:
            # Periods T_0 * T_mult**k sum to T_0 (T_mult**n - 1) / (T_mult - 1): invert that.
            n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
            self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
            self.T_i = self.T_0 * self.T_mult**n
        else:
            self.T_i = self.T_0
            self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._set_lrs(self.get_lr())


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy: from ``max_lr / div_factor`` up to ``max_lr`` over the first
    ``pct_start`` of ``total_steps`` (or ``epochs * steps_per_epoch``), then down to
    ``initial_lr / final_div_factor``, each phase annealed by ``anneal_strategy``:

    .. math:: \eta = \eta_{end} + \frac{1}{2}(\eta_{start} - \eta_{end})(1 + \cos(\pi p))
        \quad\text{or}\quad \eta = \eta_{start} + (\eta_{end} - \eta_{start}) p

    with :math:`p` the fraction of the phase done. With ``three_phase`` the descent to
    ``initial_lr`` mirrors the ascent and a third phase goes on to the minimum. With
    ``cycle_momentum`` the momentum (``group["momentum"]``, or ``betas[0]`` for optimizers with
    ``betas``) moves inversely, between ``max_momentum`` and ``base_momentum``. Not chainable.
    ``max_lr`` and the momentum bounds take one value or one per param group.

    >>> from types import SimpleNamespace
    >>> optimizer = SimpleNamespace(param_groups=[{"lr": 1.0}])
    >>> scheduler = OneCycleLR(optimizer, max_lr=1.0, total_steps=10, cycle_momentum=False)
    >>> [round(lr, 6) for lr in scheduler.get_last_lr()]  # max_lr / div_factor (25) at first
    [0.04]
    """

    def __init__(
        self,
        optimizer: HasParamGroups,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: Literal["cos", "linear"] = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError(
                    "total_steps is required unless epochs and steps_per_epoch are both given, "
                    f"got total_steps=None, epochs={epochs}, steps_per_epoch={steps_per_epoch}"
                )
            positive_int("epochs", epochs)
            positive_int("steps_per_epoch", steps_per_epoch)
            total_steps = epochs * steps_per_epoch
        positive_int("total_steps", total_steps)
        require(
            isinstance(pct_start, float) and 0 <= pct_start <= 1,
            f"pct_start must be a float in [0, 1], got {pct_start!r}",
        )
        positive("div_factor", div_factor)
        positive("final_div_factor", final_div_factor)
        self.total_steps = total_steps
        self.anneal_strategy = anneal_strategy
        # (last step, lr from/to, momentum from/to): keys into each group, where PyTorch keeps
        # the per-group bounds.
        hi, lo, up = "max_momentum", "base_momentum", pct_start * total_steps - 1.0
        self._phases: list[tuple[float, str, str, str, str]]
        if three_phase:
            self._phases = [
                (up, "initial_lr", "max_lr", hi, lo),
                (2 * pct_start * total_steps - 2.0, "max_lr", "initial_lr", lo, hi),
                (total_steps - 1, "initial_lr", "min_lr", hi, hi),
            ]
        else:
            self._phases = [
                (up, "initial_lr", "max_lr", hi, lo),
                (total_steps - 1, "max_lr", "min_lr", lo, hi),
            ]
        groups = optimizer.param_groups
        peaks = per_group("max_lr", max_lr, len(groups))
        if last_epoch == -1:
            for group, peak in zip(groups, peaks, strict=True):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        # PyTorch looks at optimizer.defaults; a bare param_groups holder is judged by a group.
        keys = getattr(optimizer, "defaults", None) or (groups[0] if groups else {})
        self.use_beta1 = "betas" in keys
        if cycle_momentum:
            require(
                "momentum" in keys or "betas" in keys,
                f"cycle_momentum=True needs an optimizer with 'momentum' or 'betas', got {keys}",
            )
            highs = per_group("max_momentum", max_momentum, len(groups))
            lows = per_group("base_momentum", base_momentum, len(groups))
            for group, high, low in zip(groups, highs, lows, strict=True):
                if last_epoch == -1:
                    self._set_momentum(group, high)
                    group["max_momentum"], group["base_momentum"] = high, low
        super().__init__(optimizer, last_epoch)

    def _check(self) -> None:
        super()._check()
        positive_int("total_steps", self.total_steps)
        require(
            self.anneal_strategy in ("cos", "linear"),
            f"anneal_strategy must be 'cos' or 'linear', got {self.anneal_strategy!r}",
        )

    def _set_momentum(self, group: dict[str, Any], value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        require(step <= self.total_steps, f"stepped {step} times, total_steps={self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr_from, lr_to, mom_from, mom_to) in enumerate(self._phases):
                if step <= end or i == len(self._phases) - 1:
                    pct = (step - start) / (end - start)
                    lrs.append(self._anneal(group[lr_from], group[lr_to], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[mom_from], group[mom_to], pct))
                    break
                start = end
        return lrs


class _Composite(LRScheduler):
    """Schedulers that drive other schedulers of the same optimizer; they keep no base_lrs."""

    def _drive(self, optimizer: HasParamGroups, schedulers: Sequence[LRScheduler]) -> None:
        for i, sched in enumerate(schedulers):
            # ReduceLROnPlateau is no LRScheduler: it can't step without a metric.
            require(
                isinstance(sched, LRScheduler),
                f"schedulers[{i}] must be an LRScheduler, got {type(sched).__name__}",
            )
            require(
                sched.optimizer is optimizer,
                f"schedulers[{i}] ({type(sched).__name__}) drives another optimizer",
            )
        self._schedulers = list(schedulers)
        self.optimizer = optimizer

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in vars(self).items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [sched.state_dict() for sched in self._schedulers]
        return state

    def _check(self) -> None:
        pass  # no numbers of its own beyond what its constructor or children check

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the attributes and every child's state; all or nothing."""

        def apply(state: dict[str, Any]) -> None:
            state = dict(state)
            children = state.pop("_schedulers", None)
            if children is not None:
                require(
                    isinstance(children, list) and len(children) == len(self._schedulers),
                    f"{type(self).__name__}.load_state_dict: _schedulers must hold "
                    f"{len(self._schedulers)} states, got {children!r}",
                )
            self.__dict__.update(state)
            for sched, child_state in zip(self._schedulers, children or [], strict=False):
                sched.load_state_dict(child_state)

        load_checked(self, state_dict, apply)


def _undo_initial_step(sched: LRScheduler) -> None:
    if isinstance(sched, _Composite):
        for child in sched._schedulers:
            _undo_initial_step(child)
    elif hasattr(sched, "last_epoch"):
        sched.last_epoch -= 1


class SequentialLR(_Composite):
    r"""Runs ``schedulers[i]`` from epoch ``milestones[i-1]`` until ``milestones[i]``.

    At each milestone the next scheduler restarts at its epoch 0 in closed form (from its
    initial lrs), e.g. ``SequentialLR(opt, [LinearLR(opt), CosineAnnealingLR(opt, 95)], [5])``
    is a 5-epoch linear warm-up followed by cosine decay. ``milestones`` are increasing, one
    fewer than ``schedulers``; all schedulers drive ``optimizer``.

    >>> from types import SimpleNamespace
    >>> optimizer = SimpleNamespace(param_groups=[{"lr": 1.0}])
    >>> warmup = LinearLR(optimizer, start_factor=0.5, total_iters=1)
    >>> decay = ExponentialLR(optimizer, gamma=0.5)
    >>> scheduler = SequentialLR(optimizer, [warmup, decay], milestones=[1])
    >>> lrs = scheduler.get_last_lr()
    >>> for _ in range(2):
    ...     scheduler.step()
    ...     lrs += scheduler.get_last_lr()
    >>> lrs
    [0.5, 1.0, 0.5]
    """

    def __init__(
        self,
        optimizer: HasParamGroups,
        schedulers: list[LRScheduler],
        milestones: list[int],
        last_epoch: int = -1,
    ) -> None:
        require(len(schedulers) > 0, f"schedulers must not be empty, got {schedulers}")
        int_at_least("last_epoch", last_epoch, -1)
        self._drive(optimizer, schedulers)
        require(
            len(milestones) == len(schedulers) - 1,
            f"milestones needs len(schedulers) - 1 entries, got {milestones}",
        )
        self._milestones = increasing("milestones", milestones)
        self.last_epoch = last_epoch + 1
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        # Every child took its constructor step; undo that, then start only the active one.
        for sched in self._schedulers:
            _undo_initial_step(sched)
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def _check(self) -> None:
        int_at_least("last_epoch", self.last_epoch, 0)
        increasing("milestones", self._milestones)
        require(
            len(self._milestones) == len(self._schedulers) - 1,
            f"milestones needs len(schedulers) - 1 entries, got {self._milestones}",
        )

    def step(self, epoch: int | None = None) -> None:
        """Step the scheduler active at the next epoch (``epoch`` is not supported)."""
        require(epoch is None, f"epoch is not supported by SequentialLR.step, got {epoch}")
        with unchanged_on_error(self):
            self._advance()

    def _advance(self) -> None:
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        sched = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            sched._update_lr(0)
        else:
            sched.step()
        self._last_lr = sched.get_last_lr()


class ChainedScheduler(_Composite):
    """Steps every scheduler of ``schedulers`` on each :meth:`step`, so their factors compose.

    ``optimizer`` defaults to the first scheduler's; all schedulers must drive it.

    >>> from types import SimpleNamespace
    >>> optimizer = SimpleNamespace(param_groups=[{"lr": 1.0}])
    >>> halve, quarter = ExponentialLR(optimizer, 0.5), ExponentialLR(optimizer, 0.25)
    >>> scheduler = ChainedScheduler([halve, quarter])
    >>> scheduler.step()
    >>> scheduler.get_last_lr()
    [0.125]
    """

    def __init__(
        self, schedulers: Sequence[LRScheduler], optimizer: HasParamGroups | None = None
    ) -> None:
        require(len(schedulers) > 0, f"schedulers must not be empty, got {schedulers}")
        self._drive(schedulers[0].optimizer if optimizer is None else optimizer, schedulers)
        self._last_lr = self._lrs()

    def step(self, epoch: int | None = None) -> None:
        """Step each scheduler in order (``epoch`` is not supported)."""
        require(epoch is None, f"epoch is not supported by ChainedScheduler.step, got {epoch}")
        with unchanged_on_error(self):
            for sched in self._schedulers:
                sched.step()
            self._last_lr = self._lrs()
