"""Optimizer state dicts: packing to plain data, and checking and unpacking it.

The layout is PyTorch's, so a ``torch.optim`` state dict loads here (its
tensors read through ``__array__``) and ours loads there once arrays become
tensors::

    {"state": {index: {"step": float, "exp_avg": ndarray, ...}},
     "param_groups": [{hyperparameters..., "params": [index, ...]}]}

Unpacking validates everything and builds the new state aside; the optimizer
swaps it in only when nothing is wrong.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from netcl.core.tensor import Tensor, float32
from netcl.optim.hyperparameters import Hyperparameters
from netcl.optim.param_state import ParamState

GroupCheck = Callable[[Mapping[str, Any], str], object]
GroupHyperparameters = Callable[[Mapping[str, Any]], Hyperparameters]


def pack_state(
    param_groups: Sequence[Mapping[str, Any]], state: Mapping[Tensor, ParamState]
) -> dict[str, Any]:
    """``param_groups`` and ``state`` as plain, picklable data (numpy arrays, floats)."""
    index_of: dict[int, int] = {}
    groups: list[dict[str, Any]] = []
    for group in param_groups:
        packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
        packed["params"] = [index_of.setdefault(id(p), len(index_of)) for p in group["params"]]
        groups.append(packed)
    packed_state: dict[int, dict[str, Any]] = {}
    for p, st in state.items():
        index = index_of.get(id(p))
        if index is None:  # a group removed from param_groups by hand
            continue
        entry: dict[str, Any] = {} if st.step is None else {"step": st.step}
        entry.update(st.scalars)
        entry.update((key, tensor.numpy()) for key, tensor in st.buffers.items())
        packed_state[index] = entry
    return {"state": dict(sorted(packed_state.items())), "param_groups": groups}


def unpack_groups(
    state_dict: object,
    param_groups: Sequence[Mapping[str, Any]],
    check_group: GroupCheck,
    where: str,
    hyperparameters: type[Hyperparameters] | None = None,
) -> tuple[list[dict[str, Any]], dict[Any, Tensor]]:
    """The new param groups (saved hyperparameters over current ones, current params)
    and the map from saved parameter index to parameter. Nothing is changed. With
    ``hyperparameters``, a saved group must be that algorithm's (``Hyperparameters.foreign``)."""
    if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= state_dict.keys():
        raise ValueError(f"{where}: expected a dict with 'state' and 'param_groups'")
    saved_groups = state_dict["param_groups"]
    if not _is_list(saved_groups):
        raise ValueError(f"{where}: 'param_groups' must be a list of dicts")
    if len(saved_groups) != len(param_groups):
        raise ValueError(
            f"{where}: the state dict has {len(saved_groups)} param groups, this optimizer "
            f"has {len(param_groups)}"
        )
    id_map: dict[Any, Tensor] = {}
    groups: list[dict[str, Any]] = []
    for g, (group, saved) in enumerate(zip(param_groups, saved_groups, strict=True)):
        if not isinstance(saved, Mapping) or not _is_list(saved.get("params")):
            raise ValueError(f"{where}: param group {g} must be a dict with a 'params' list")
        if hyperparameters is not None:
            saved = {**hyperparameters.absent_defaults, **saved}
        alien = None if hyperparameters is None else hyperparameters.foreign(saved)
        if alien is not None:
            raise ValueError(
                f"{where}: param group {g} of the state dict is not this algorithm's: {alien}; "
                "load a state dict saved by the same algorithm"
            )
        indices = saved["params"]
        if len(indices) != len(group["params"]):
            raise ValueError(
                f"{where}: param group {g} has {len(indices)} params in the state dict, "
                f"{len(group['params'])} in this optimizer"
            )
        for index, p in zip(indices, group["params"], strict=True):
            if isinstance(index, bool) or not isinstance(index, numbers.Integral):
                raise ValueError(f"{where}: param group {g} lists {index!r}, not an index")
            if index in id_map:
                raise ValueError(f"{where}: parameter index {index} is listed twice")
            id_map[index] = p
        new = {k: v for k, v in group.items() if k != "params"}
        new.update((k, copy.deepcopy(v)) for k, v in saved.items() if k != "params")
        new["params"] = group["params"]
        check_group(new, f"{where}: param group {g}")
        groups.append(new)
    return groups, id_map


def unpack_state(
    state_dict: Mapping[str, Any],
    id_map: Mapping[Any, Tensor],
    groups: Sequence[Mapping[str, Any]],
    hyperparameters_of: GroupHyperparameters,
    counts_steps: bool,
    where: str,
    scalar_names: Sequence[str] = (),
    master_weights: bool = False,
) -> dict[Tensor, tuple[float | None, dict[str, float], dict[str, np.ndarray[Any, Any]]]]:
    """Each saved parameter's (step, numbers named ``scalar_names``, state arrays), checked;
    host arrays in the shapes and dtypes its group's hyperparameters give (``state_shapes``,
    ``state_dtype``),
    and, with ``master_weights``, a 16-bit parameter's ``master_param`` if saved (it is
    optional: PyTorch's state dicts have none). Nothing touches a device: the optimizer
    places them."""
    saved_state = state_dict["state"]
    if not isinstance(saved_state, Mapping):
        raise ValueError(f"{where}: 'state' must be a dict of per-parameter dicts")
    group_of = {id(p): group for group in groups for p in group["params"]}
    checked: list[tuple[Tensor, float | None, dict[str, float], dict[str, np.ndarray[Any, Any]]]]
    checked = []
    for index, entry in saved_state.items():
        p = id_map.get(index)
        if p is None:
            raise ValueError(f"{where}: state for parameter index {index!r}, which no group lists")
        at = f"{where}: state[{index!r}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{at} must be a dict, got {type(entry).__name__}")
        hyper = hyperparameters_of(group_of[id(p)])
        shapes = hyper.state_shapes(p.shape)
        if master_weights and p.dtype != float32 and "master_param" in entry:
            shapes["master_param"] = p.shape
        keys = tuple(shapes)
        expected = {*keys, *scalar_names, *(("step",) if counts_steps else ())}
        missing, unexpected = expected - entry.keys(), entry.keys() - expected
        if missing or unexpected:
            raise ValueError(
                f"{at} has keys {sorted(map(str, entry))}; expected {sorted(expected)} "
                f"(missing {sorted(missing)}, unexpected {sorted(map(str, unexpected))})"
            )
        step = _step(entry["step"], at) if counts_steps else None
        scalars = {key: _number(entry[key], f"{at}[{key!r}]") for key in scalar_names}
        arrays = {key: _array(entry[key], shapes[key], hyper.state_dtype(key), f"{at}[{key!r}]")
                  for key in keys}
        checked.append((p, step, scalars, arrays))
    return {p: (step, scalars, arrays) for p, step, scalars, arrays in checked}


def _is_list(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _number(value: object, where: str) -> float:
    """A finite real number, or a 0-d numeric array of one (PyTorch keeps a tensor)."""
    number: float | None = None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    elif hasattr(value, "__array__"):
        array = np.asarray(value)
        if array.size == 1 and array.dtype.kind in "fiu":
            number = float(array.reshape(-1)[0])
    if number is None or not math.isfinite(number):
        raise ValueError(f"{where} is {value!r}; expected a finite number")
    return number


def _step(value: object, where: str) -> float:
    """A step count: a number (see :func:`_number`) >= 0."""
    step = _number(value, f"{where}['step']")
    if step < 0:
        raise ValueError(f"{where}['step'] is {value!r}; expected a finite number >= 0")
    return step


def _array(
    value: object, shape: tuple[int, ...], dtype: np.dtype[Any], where: str
) -> np.ndarray[Any, Any]:
    """An array of ``shape`` as contiguous ``dtype``: floating values for float32 state,
    integers the dtype holds for integer state (8-bit codes)."""
    if not hasattr(value, "__array__"):
        raise ValueError(f"{where} is a {type(value).__name__}; expected an array")
    array = np.asarray(value)
    if dtype.kind in "iu":
        limits = np.iinfo(dtype)
        if array.dtype.kind not in "iu":
            raise ValueError(f"{where} has dtype {array.dtype}; expected integer ({dtype}) values")
        if array.size and not (limits.min <= array.min() and array.max() <= limits.max):
            raise ValueError(
                f"{where} holds values in [{array.min()}, {array.max()}]; expected "
                f"[{limits.min}, {limits.max}] ({dtype})")
    elif array.dtype.kind != "f":
        raise ValueError(f"{where} has dtype {array.dtype}; expected floating-point values")
    if array.shape != shape:
        raise ValueError(f"{where} has shape {array.shape}; expected {shape}")
    # ascontiguousarray makes a 0-d array 1-d; the reshape keeps a scalar parameter's ().
    return np.ascontiguousarray(array, dtype=dtype).reshape(shape)
