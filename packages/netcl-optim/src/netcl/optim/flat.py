"""The flat layout: a bucket of parameters, their grads and their state, end to end.

An optimizer built with ``fused=None`` (the default) or ``fused=True`` groups
each param group's parameters by (dtype, device) into buckets. For a bucket of
two or more parameters it allocates one buffer for the parameters, one for
their grads and, lazily on the first step, one per state buffer (``exp_avg``,
``exp_avg_sq``, ...), each holding the parameters in group order with no
padding between them. Then it:

* copies each parameter's values in and rebinds *the same* Tensor object to
  its range (``buffer``, ``offset``, ``strides``), so every reference the
  model holds keeps working;
* makes each parameter's grad home (``Tensor.set_grad_home``) its range of the
  grad buffer, so ``p.grad = g`` (autograd's first accumulation included)
  copies g there and in-place accumulation stays there;
* hands out per-parameter state tensors that are views of the state buffers,
  so ``optimizer.state[p]`` and state dicts read as before.

A step then updates a whole bucket with one launch of the family's kernel
over ``total`` elements (``run_views``). A bucket is never padded: Adam's state
is exactly 8 bytes per parameter, and the kernels' vloadN need only element
alignment.

Only parameters netcl may move are arranged: contiguous ones whose memory came
from a buffer pool (every netcl allocation). A parameter wrapping another
framework's ``pyopencl.Buffer`` is never moved, since that framework reads it
through its own buffer. Views taken of a parameter *before* the optimizer was
built keep the old memory and no longer alias the parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import numpy as np
import pyopencl as cl
import pyopencl.tools as cl_tools

from netcl.core.device import Device
from netcl.core.tensor import Tensor, empty, float32, from_numpy, zeros
from netcl.core.tensor.tensor import contiguous_strides

# Run views are cached per (start, stop); a bucket whose late parameters keep
# shifting the runs could grow the cache without bound, so it is cleared past this.
_RUN_CACHE_LIMIT = 64


def unmovable_reason(p: Tensor) -> str | None:
    """Why ``p`` cannot join a flat layout, or None if it can."""
    if not p.is_contiguous:
        return f"is not contiguous (strides {p.strides})"
    if not isinstance(p.buffer, cl_tools.PooledBuffer):
        return (
            "wraps memory netcl did not allocate (a pyopencl Buffer from another "
            "framework), which the optimizer must not move"
        )
    return None


class RunViews(NamedTuple):
    """Views over parameters ``start:stop`` of a bucket: params, grads, and each state key."""

    param: Tensor
    grad: Tensor
    state: dict[str, Tensor]


@dataclass(eq=False)
class FlatBucket:
    """Parameters of one dtype and device in one param group, laid out end to end.

    ``starts[i]`` is parameter i's first element within the bucket; every flat
    tensor is 1-D of ``total`` elements.
    """

    params: list[Tensor]
    starts: list[int]
    total: int
    param_flat: Tensor
    grad_flat: Tensor
    grad_homes: list[Tensor]
    state_flats: dict[str, Tensor] = field(default_factory=dict)
    #: Each parameter's absolute element offset in ``param_flat.buffer``.
    param_offsets: list[int] = field(init=False)
    _state_views: dict[tuple[str, int], Tensor] = field(default_factory=dict)
    _runs: dict[tuple[int, int], tuple[Tensor, Tensor]] = field(default_factory=dict)
    _run_states: dict[tuple[str, int, int], Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.param_offsets = [self.param_flat.offset + start for start in self.starts]

    @property
    def device(self) -> Device:
        return self.param_flat.device

    def state_flat(self, key: str) -> Tensor:
        """The float32 buffer for state ``key``, zero-filled when first asked for."""
        flat = self.state_flats.get(key)
        if flat is None:
            flat = zeros((self.total,), float32, device=self.device)
            self.state_flats[key] = flat
        return flat

    def state_view(self, key: str, index: int) -> Tensor:
        """Parameter ``index``'s state ``key``: a view of ``state_flat(key)`` in its shape.

        The same Tensor object every time, so a loaded state dict lands in the views
        an earlier ``optimizer.state[p]`` handed out.
        """
        view = self._state_views.get((key, index))
        if view is None:
            flat = self.state_flat(key)
            p = self.params[index]
            view = Tensor(flat.buffer, p.shape, float32, self.device,
                          offset=flat.offset + self.starts[index])
            self._state_views[(key, index)] = view
        return view

    def run_views(self, start: int, stop: int, keys: Iterable[str]) -> RunViews:
        """1-D views over parameters ``start`` to ``stop - 1``: one kernel launch's operands."""
        if len(self._runs) > _RUN_CACHE_LIMIT:
            self._runs.clear()
            self._run_states.clear()
        views = self._runs.get((start, stop))
        if views is None:
            views = (self._span(self.param_flat, start, stop),
                     self._span(self.grad_flat, start, stop))
            self._runs[(start, stop)] = views
        state: dict[str, Tensor] = {}
        for key in keys:
            view = self._run_states.get((key, start, stop))
            if view is None:
                view = self._span(self.state_flat(key), start, stop)
                self._run_states[(key, start, stop)] = view
            state[key] = view
        return RunViews(views[0], views[1], state)

    def _span(self, flat: Tensor, start: int, stop: int) -> Tensor:
        if start == 0 and stop == len(self.params):
            return flat
        first = self.starts[start]
        last = self.starts[stop] if stop < len(self.params) else self.total
        return Tensor(flat.buffer, (last - first,), flat.dtype, flat.device,
                      offset=flat.offset + first)

    def load(self, key: str, host: np.ndarray[Any, Any]) -> None:
        """Replace state ``key`` of the whole bucket by ``host`` (float32, ``total``), in place."""
        flat = self.state_flats.get(key)
        if flat is None:
            self.state_flats[key] = from_numpy(host, self.device)
        elif self.total:
            _write(flat, host)


def arrange(params: Sequence[Tensor]) -> list[FlatBucket]:
    """Lay out ``params`` (one param group, each movable) in one bucket per dtype and device.

    Buckets of a single parameter are not made: its own memory is already one
    range, so its per-parameter launch is the fused launch. Returns the buckets.
    """
    by_kind: dict[tuple[Any, Device], list[Tensor]] = {}
    for p in params:
        by_kind.setdefault((p.dtype, p.device), []).append(p)
    return [_bucket(members) for members in by_kind.values() if len(members) > 1]


def _bucket(params: list[Tensor]) -> FlatBucket:
    starts: list[int] = []
    total = 0
    for p in params:
        starts.append(total)
        total += p.size
    first = params[0]
    param_flat = _adopt([(p.buffer, p.offset, p.size) for p in params], first, total)
    if param_flat is None:
        param_flat = empty((total,), first.dtype, first.device)
        for p, start in zip(params, starts, strict=True):
            _copy_into(param_flat, start, p)
            p.buffer, p.offset = param_flat.buffer, param_flat.offset + start
            p.strides = contiguous_strides(p.shape)
    homes = [p.grad_home for p in params]
    if all(home is not None for home in homes):
        placed = [(h.buffer, h.offset, h.size) for h in homes if h is not None]
        grad_flat = _adopt(placed, first, total)
        if grad_flat is not None:
            # Keep the homes themselves: a step recognises a grad in place by identity,
            # so new home objects would push the other optimizer onto its slow path.
            return FlatBucket(params, starts, total, param_flat, grad_flat,
                              [h for h in homes if h is not None])
    # Uninitialised: a range is read only after its parameter's grad was stored there.
    grad_flat = empty((total,), first.dtype, first.device)
    grad_homes = []
    for p, start in zip(params, starts, strict=True):
        home = Tensor(grad_flat.buffer, p.shape, p.dtype, p.device,
                      offset=grad_flat.offset + start)
        p.set_grad_home(home)  # copies a grad p already has
        grad_homes.append(home)
    return FlatBucket(params, starts, total, param_flat, grad_flat, grad_homes)


def _adopt(
    placed: Sequence[tuple[Any, int, int]], like: Tensor, total: int
) -> Tensor | None:
    """A flat view when ``placed`` ranges (buffer, offset, size) already tile one buffer
    in order (a second optimizer over arranged parameters, or a model's own flat
    storage), so nothing is copied; else None."""
    buffer, offset = placed[0][0], placed[0][1]
    at = offset
    for other_buffer, other_offset, size in placed:
        if other_buffer is not buffer or other_offset != at:
            return None
        at += size
    return Tensor(buffer, (total,), like.dtype, like.device, offset=offset)


def _copy_into(flat: Tensor, start: int, p: Tensor) -> None:
    """Enqueue a device copy of contiguous ``p`` into ``flat`` from element ``start``."""
    if not p.size:
        return
    itemsize = p.itemsize
    # pyopencl's stubs name Buffer; a pooled buffer copies the same way.
    cl.enqueue_copy(
        flat.queue, cast(cl.Buffer, flat.buffer), cast(cl.Buffer, p.buffer),
        byte_count=p.size * itemsize, src_offset=p.offset * itemsize,
        dst_offset=(flat.offset + start) * itemsize,
    )


def _write(view: Tensor, host: np.ndarray[Any, Any]) -> None:
    """Copy contiguous ``host`` into contiguous ``view`` (blocking: the caller may drop it)."""
    cl.enqueue_copy(
        view.queue, cast(cl.Buffer, view.buffer), np.ascontiguousarray(host, view.dtype),
        dst_offset=view.offset * view.itemsize, is_blocking=True,
    )


def stage(
    bucket: FlatBucket, loaded: Mapping[int, Mapping[str, np.ndarray[Any, Any]]]
) -> dict[str, np.ndarray[Any, Any]]:
    """Host images of the bucket's state buffers after a load: ``loaded[i][key]`` at
    parameter i's range, zeros for every parameter without loaded state (so a parameter
    whose state is created later starts from zero, as a fresh one does)."""
    keys = set(bucket.state_flats)
    for arrays in loaded.values():
        keys.update(arrays)
    images: dict[str, np.ndarray[Any, Any]] = {}
    for key in sorted(keys):
        image = np.zeros(bucket.total, np.float32)
        for index, arrays in loaded.items():
            if key in arrays:
                start = bucket.starts[index]
                image[start:start + bucket.params[index].size] = arrays[key].reshape(-1)
        images[key] = image
    return images
