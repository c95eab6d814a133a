"""A parameter given to two optimizers is caught; dead optimizers and parameters free it."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import netcl.optim as no
from netcl.core.tensor import Parameter, from_numpy
from netcl.optim import ownership


def param(n: int = 4) -> Parameter:
    return Parameter(from_numpy(np.ones(n, dtype=np.float32)))


def test_second_optimizer_is_refused_naming_the_first() -> None:
    p, q = param(), param()
    first = no.Adam([p])
    taken = r"parameter 1 \(shape \(4,\)\) is already updated by Adam"
    with pytest.raises(ValueError, match=taken):
        no.SGD([q, p], lr=0.1)
    with pytest.raises(ValueError, match="allow_shared=True"):
        no.Adam([{"params": [q]}, {"params": [p]}])
    other = no.SGD([q], lr=0.1)
    with pytest.raises(ValueError, match="already updated by Adam"):
        other.add_param_group({"params": [p]})
    assert len(other.param_groups) == 1
    del first


def test_a_refused_optimizer_claims_nothing() -> None:
    p, q = param(), param()
    keep = no.Adam([p])
    with pytest.raises(ValueError):
        no.Adam([q, p])  # q was checked first but must not stay claimed
    no.SGD([q], lr=0.1)
    del keep


def test_allow_shared_lets_two_optimizers_hold_one_parameter() -> None:
    p = param()
    first = no.Adam([p])
    second = no.SGD([p], lr=0.1, allow_shared=True)
    assert second.param_groups[0]["params"][0] is first.param_groups[0]["params"][0]


def test_a_dead_optimizer_frees_its_parameters() -> None:
    p = param()
    first = no.Adam([p])
    del first
    gc.collect()
    no.Adam([p])  # no error


def test_a_parameter_an_optimizer_no_longer_holds_is_free() -> None:
    p, q = param(), param()
    first = no.Adam([p])
    first.add_param_group({"params": [q]})
    first.param_groups.pop()
    no.SGD([q], lr=0.1)  # first is alive but no longer holds q
    assert first.param_groups[0]["params"][0] is p


def test_a_dead_parameter_leaves_the_registry_and_its_id_can_be_reused() -> None:
    base = from_numpy(np.ones(4, dtype=np.float32))
    keep = Parameter(base)
    optimizer = no.Adam([keep])
    doomed = Parameter(base)
    optimizer.add_param_group({"params": [doomed]})
    doomed_id = id(doomed)
    assert ownership.tracks(doomed_id)
    optimizer.param_groups.pop()  # the optimizer stays alive; the parameter dies
    del doomed
    gc.collect()
    assert not ownership.tracks(doomed_id)
    # CPython hands the freed memory to the next object of the same size: find the new
    # Parameter that got the dead one's id; it must not look taken.
    candidates = [Parameter.__new__(Parameter) for _ in range(2000)]
    reused = next((c for c in candidates if id(c) == doomed_id), None)
    assert reused is not None, "no new object reused the id (not CPython's allocator?)"
    Parameter.__init__(reused, base)
    no.SGD([reused], lr=0.1)
    assert optimizer.param_groups[0]["params"][0] is keep
