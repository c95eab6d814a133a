"""GradScaler: loss scaling for float16 training, with PyTorch's API and semantics.

``torch.amp.GradScaler`` is the reference. The scale, the growth tracker and
each optimizer's found-inf flag live in device memory: the inf/NaN check is one
launch per run of adjacent gradients (one per flat bucket), the scale update is
one launch, and an optimizer that takes the scaler's buffers (Adam, AdamW:
``_step_supports_amp_scaling``) unscales, skips on overflow and steps in its
own single launch. Nothing reads the device, so a captured step (``netcl.jit``)
replays all of it. Other optimizers get PyTorch's plain path: the gradients
are unscaled in place and ``found_inf`` is read on the host to decide.
"""

from __future__ import annotations

import enum
import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from netcl.core.device import Device
from netcl.core.tensor import Tensor, dtypes, full, ops
from netcl.core.tensor.launch import launch
from netcl.core.tensor.ops.elementwise import elementwise
from netcl.optim.functional.kernels import BUILD_OPTIONS

KERNEL_FILE = Path(__file__).resolve().parent / "functional" / "grad_scaling.cl"


class _Stage(enum.Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


class GradScaler:
    """Scale the loss up so float16 gradients do not underflow, and step only on
    finite gradients, adapting the scale as PyTorch's ``GradScaler`` does.

    Each ``update()`` multiplies the scale by ``backoff_factor`` if a step since
    the last update found an inf or NaN gradient (that step was skipped), or by
    ``growth_factor`` after ``growth_interval`` clean steps in a row. With
    ``enabled=False`` every method is a pass-through.

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> from netcl.optim import Adam
    >>> w = Parameter(from_numpy(np.ones(2, np.float32)))
    >>> optimizer, scaler = Adam([w], lr=0.1), GradScaler(init_scale=4.0, growth_interval=1)
    >>> w.grad = from_numpy(np.array([np.inf, 1.0], np.float32))  # an overflowed gradient
    >>> scaler.step(optimizer); scaler.update()
    >>> w.numpy(), scaler.get_scale()  # the step was skipped and the scale halved
    (array([1., 1.], dtype=float32), 2.0)
    """

    def __init__(self, device: Device | None = None, init_scale: float = 2.0**16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True) -> None:
        _check_factors(init_scale, growth_factor, backoff_factor, growth_interval)
        self._device = device
        self._enabled = bool(enabled)
        self._init_scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._init_growth_tracker = 0
        self._scale: Tensor | None = None
        self._growth_tracker: Tensor | None = None
        self._one: Tensor | None = None
        # Per optimizer: its found-inf flag (kept, so a captured step reads the same
        # buffer every time) and where it is between update()s.
        self._found_inf: weakref.WeakKeyDictionary[Any, Tensor] = weakref.WeakKeyDictionary()
        self._stages: weakref.WeakKeyDictionary[Any, _Stage] = weakref.WeakKeyDictionary()

    # -- scaling -------------------------------------------------------------------------
    @overload
    def scale(self, outputs: Tensor) -> Tensor: ...
    @overload
    def scale(self, outputs: list[Tensor]) -> list[Tensor]: ...
    @overload
    def scale(self, outputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]: ...

    def scale(self, outputs: Tensor | list[Tensor] | tuple[Tensor, ...]) -> Any:
        """``outputs`` (a tensor or a list/tuple of tensors) multiplied by the scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            return ops.mul(outputs, self._scale_on(outputs.device))
        if isinstance(outputs, list | tuple):
            return type(outputs)(self.scale(x) for x in outputs)
        raise TypeError(
            f"GradScaler.scale: outputs must be a Tensor or a list or tuple of Tensors, got "
            f"{type(outputs).__name__}")

    def unscale_(self, optimizer: Any) -> None:
        """Divide ``optimizer``'s gradients by the scale in place (before clipping them,
        say) and note whether any is inf or NaN. At most once per optimizer per step."""
        if not self._enabled:
            return
        stage = self._stages.get(optimizer, _Stage.READY)
        if stage is _Stage.UNSCALED:
            raise RuntimeError(
                "unscale_() has already been called on this optimizer since the last update().")
        if stage is _Stage.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        self._check(optimizer, unscale=True)
        self._stages[optimizer] = _Stage.UNSCALED

    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """``optimizer.step(*args, **kwargs)`` on unscaled gradients, skipped if any was
        inf or NaN; returns what the step returns (None when skipped on the host path)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        stage = self._stages.get(optimizer, _Stage.READY)
        if stage is _Stage.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if getattr(optimizer, "_step_supports_amp_scaling", False):
            if stage is _Stage.READY:
                self._check(optimizer, unscale=False)
            found_inf = self._found_inf[optimizer]
            scale = self._scale_on(found_inf.device)
            optimizer.grad_scale = self._one_on(found_inf.device) if stage is _Stage.UNSCALED \
                else scale
            optimizer.found_inf = found_inf
            try:
                result = optimizer.step(*args, **kwargs)
            finally:
                optimizer.grad_scale = None
                optimizer.found_inf = None
        else:
            if stage is _Stage.READY:
                self._check(optimizer, unscale=True)
            # PyTorch's path for optimizers that cannot skip on the device: read the flag.
            found = float(self._found_inf[optimizer].item())
            result = optimizer.step(*args, **kwargs) if found == 0.0 else None
        self._stages[optimizer] = _Stage.STEPPED
        return result

    def update(self, new_scale: float | Tensor | None = None) -> None:
        """Adapt the scale after this step's optimizers stepped (or set it to ``new_scale``)."""
        if not self._enabled:
            return
        if new_scale is not None:
            scale = self._scale_on(self._device_or_default())
            if isinstance(new_scale, Tensor):
                if new_scale.size != 1:
                    raise ValueError(
                        f"GradScaler.update: new_scale must have one element, got shape "
                        f"{new_scale.shape}")
                ops.copy_(scale, ops.reshape(ops.cast(new_scale, dtypes.float32), ()))
            else:
                ops.fill_(scale, float(new_scale))
        else:
            flags = [self._found_inf[opt] for opt in list(self._stages)]
            if not flags:
                raise AssertionError("No inf checks were recorded prior to update.")
            combined = flags[0]
            for flag in flags[1:]:
                combined = ops.add(combined, flag)
            scale = self._scale_on(combined.device)
            assert self._growth_tracker is not None
            kernel = _kernel(combined.device, "update_scale", dtypes.float32, False)
            launch(combined.device, kernel, 1, scale.buffer, self._growth_tracker.buffer,
                   combined.buffer, np.float32(self._growth_factor),
                   np.float32(self._backoff_factor), np.int32(self._growth_interval))
            if len(flags) > 1:  # the kernel cleared their sum; clear each for the next step
                for flag in flags:
                    ops.fill_(flag, 0.0)
        self._stages.clear()

    # -- reading and setting -------------------------------------------------------------
    def get_scale(self) -> float:
        """The scale as a Python float (reads the device), 1.0 when disabled."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.item())

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        _check_factors(self._init_scale, new_factor, self._backoff_factor, self._growth_interval)
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        _check_factors(self._init_scale, self._growth_factor, new_factor, self._growth_interval)
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        _check_factors(self._init_scale, self._growth_factor, self._backoff_factor, new_interval)
        self._growth_interval = int(new_interval)

    def is_enabled(self) -> bool:
        return self._enabled

    def _get_growth_tracker(self) -> int:
        if self._growth_tracker is None:
            return self._init_growth_tracker
        return int(self._growth_tracker.item())

    def state_dict(self) -> dict[str, Any]:
        """PyTorch's keys: scale, growth_factor, backoff_factor, growth_interval and
        _growth_tracker; empty when disabled."""
        if not self._enabled:
            return {}
        return {
            "scale": self.get_scale(),
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": self._get_growth_tracker(),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Take a state dict of :meth:`state_dict` (or PyTorch's); checked whole first, so a
        bad one changes nothing."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError(
                "The source state dict is empty, possibly because it was saved from a "
                "disabled instance of GradScaler.")
        keys = ("scale", "growth_factor", "backoff_factor", "growth_interval",
                "_growth_tracker")
        missing = [k for k in keys if k not in state_dict]
        if missing:
            raise ValueError(f"GradScaler.load_state_dict: missing keys {missing}; expected "
                             f"{list(keys)}")
        scale = float(state_dict["scale"])
        growth_factor = float(state_dict["growth_factor"])
        backoff_factor = float(state_dict["backoff_factor"])
        growth_interval = state_dict["growth_interval"]
        tracker = state_dict["_growth_tracker"]
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, int | np.integer):
            raise ValueError(f"GradScaler.load_state_dict: growth_interval must be an int, got "
                             f"{growth_interval!r}")
        if isinstance(tracker, bool) or not isinstance(tracker, int | np.integer) or tracker < 0:
            raise ValueError(f"GradScaler.load_state_dict: _growth_tracker must be an int >= 0, "
                             f"got {tracker!r}")
        _check_factors(scale, growth_factor, backoff_factor, int(growth_interval))
        self._init_scale = scale
        self._growth_factor = growth_factor
        self._backoff_factor = backoff_factor
        self._growth_interval = int(growth_interval)
        self._init_growth_tracker = int(tracker)
        if self._scale is not None:
            ops.fill_(self._scale, scale)
        if self._growth_tracker is not None:
            ops.fill_(self._growth_tracker, int(tracker))

    # -- the device side -----------------------------------------------------------------
    def _device_or_default(self) -> Device:
        if self._scale is not None:
            return self._scale.device
        from netcl.core.device import manager

        return self._device or manager.default("auto")

    def _scale_on(self, device: Device) -> Tensor:
        """The scale tensor (0-d float32), made on first use on ``device``."""
        if self._scale is None:
            self._scale = full((), self._init_scale, dtypes.float32, self._device or device)
            self._growth_tracker = full((), self._init_growth_tracker, dtypes.int32,
                                        self._scale.device)
        return self._scale

    def _one_on(self, device: Device) -> Tensor:
        """A device 1.0: the grad_scale of gradients unscale_() already divided."""
        if self._one is None:
            self._one = full((), 1.0, dtypes.float32, self._device or device)
        return self._one

    def _check(self, optimizer: Any, unscale: bool) -> None:
        """Look for inf and NaN in ``optimizer``'s gradients (dividing them by the scale
        when ``unscale``): one launch per run of adjacent gradients in one buffer."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        device = grads[0].device if grads else self._device_or_default()
        found_inf = self._found_inf.get(optimizer)
        if found_inf is None:
            found_inf = self._found_inf[optimizer] = full((), 0.0, dtypes.float32, device)
        scale = self._scale_on(device)
        for run in _adjacent_runs(grads):
            if not run.is_contiguous:
                # Read through a contiguous copy; divide in place through the strided path.
                _check_run(ops.copy(run), found_inf, scale, False)
                if unscale:
                    elementwise("unscale_", "a * (1.0f / b)", [run, scale], out=run)
            else:
                _check_run(run, found_inf, scale, unscale)


def _check_run(grads: Tensor, found_inf: Tensor, scale: Tensor, unscale: bool) -> None:
    kernel = _kernel(grads.device, "check_and_unscale", grads.dtype, unscale)
    launch(grads.device, kernel, grads.size, np.int64(grads.size), grads.buffer,
           np.int64(grads.offset), found_inf.buffer, scale.buffer)


def _kernel(device: Device, name: str, grad_dtype: np.dtype[Any], unscale: bool) -> Any:
    defines: dict[str, str | int] = {
        "G_T": dtypes.STORAGE_C_TYPE[grad_dtype],
        "LOAD_G(i)": dtypes.cl_load(grad_dtype, "g", "(i)"),
        "STORE_G(i, v)": dtypes.cl_store(grad_dtype, "g", "(i)", "(v)"),
        "UNSCALE": int(unscale),
    }
    # 1 / scale correctly rounded, as PyTorch's reciprocal.
    return device.kernels.kernel((dtypes.BFLOAT16_CL, KERNEL_FILE), name, defines, BUILD_OPTIONS)


def _adjacent_runs(grads: Sequence[Tensor]) -> list[Tensor]:
    """``grads`` merged where one ends exactly where the next begins in one buffer (a
    flat layout's grad homes): each run a 1-D view; anything else as it is."""
    runs: list[Tensor] = []
    contiguous = sorted((g for g in grads if g.is_contiguous),
                        key=lambda g: (g.buffer.int_ptr, g.dtype.str, g.offset))
    start: Tensor | None = None
    end = 0
    for g in contiguous:
        if (start is not None and g.buffer.int_ptr == start.buffer.int_ptr
                and g.dtype == start.dtype and g.offset == end):
            end += g.size
            continue
        if start is not None:
            runs.append(_flat_view(start, end))
        start, end = g, g.offset + g.size
    if start is not None:
        runs.append(_flat_view(start, end))
    return runs + [g for g in grads if not g.is_contiguous]


def _flat_view(first: Tensor, end: int) -> Tensor:
    return Tensor(first.buffer, (end - first.offset,), first.dtype, first.device, None,
                  first.offset)


def _check_factors(init_scale: float, growth_factor: float, backoff_factor: float,
                   growth_interval: int) -> None:
    checks: list[tuple[str, Any, Callable[[Any], Any], str]] = [
        ("init_scale", init_scale, lambda v: math.isfinite(v) and v > 0, "a finite float > 0"),
        ("growth_factor", growth_factor, lambda v: math.isfinite(v) and v > 1.0,
         "a finite float > 1"),
        ("backoff_factor", backoff_factor, lambda v: 0.0 < v < 1.0, "a float in (0, 1)"),
        ("growth_interval", growth_interval,
         lambda v: isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0,
         "an int > 0"),
    ]
    for name, value, ok, expected in checks:
        try:
            good = bool(ok(value))
        except TypeError:
            good = False
        if not good:
            raise ValueError(f"GradScaler: {name} must be {expected}, got {value!r}")
