"""The newest optimizer built over a parameter owns it; dead optimizers and parameters free it."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import netcl.optim as no
from netcl.core.tensor import Parameter, from_numpy
from netcl.optim import ownership


def param(n: int = 4) -> Parameter:
    return Parameter(from_numpy(np.ones(n, dtype=np.float32)))


def grad(p: Parameter) -> None:
    p.grad = from_numpy(np.ones(p.shape, dtype=np.float32))


def test_re_creating_an_optimizer_works_and_the_new_one_owns_the_parameters() -> None:
    """Issue 16: ``opt = Adam(ps); opt = Adam(ps, lr=1e-4)`` was refused."""
    ps = [param(), param()]
    opt = no.Adam(ps)
    opt = no.Adam(ps, lr=1e-4)  # a notebook cell run again
    for p in ps:
        grad(p)
    opt.step()
    np.testing.assert_allclose(ps[0].numpy(), 1 - 1e-4, rtol=1e-6)


def test_an_older_optimizer_stepping_a_taken_parameter_raises_naming_both() -> None:
    p, q = param(), param()
    first = no.Adam([q, p])
    second = no.SGD([p], lr=0.1)
    grad(p)
    grad(q)
    taken = (rf"Adam at {id(first):#x}: parameter 1 \(shape \(4,\)\) is now updated by SGD at "
             rf"{id(second):#x}, built over it later.*allow_shared=True")
    with pytest.raises(ValueError, match=taken):
        first.step()
    np.testing.assert_array_equal(q.numpy(), np.ones(4))  # nothing stepped, not even q
    assert first.state == {}
    second.step()
    np.testing.assert_allclose(p.numpy(), 0.9)


def test_a_taken_parameter_comes_back_when_its_taker_lets_go() -> None:
    p = param()
    first = no.Adam([p])
    second = no.SGD([p], lr=0.1)
    second.param_groups.clear()  # second no longer holds p
    grad(p)
    first.step()  # p is first's again
    del second
    third = no.SGD([p], lr=0.1)
    del third
    first.step()  # third died: nobody newer holds p


def test_allow_shared_lets_two_optimizers_step_one_parameter() -> None:
    p = param()
    first = no.SGD([p], lr=0.25)
    second = no.SGD([p], lr=0.5, allow_shared=True)
    grad(p)
    first.step()
    second.step()
    np.testing.assert_allclose(p.numpy(), 1 - 0.25 - 0.5)
    third = no.SGD([p], lr=0.1)  # not shared: takes it from both
    for older in (first, second):
        with pytest.raises(ValueError, match="is now updated by SGD"):
            older.step()
    third.step()


@pytest.mark.parametrize("fused", [None, False])
def test_an_optimizer_is_freed_when_its_last_reference_goes(fused: bool | None) -> None:
    """No reference cycle keeps a stepped optimizer alive: no gc.collect needed."""
    ps = [param(), param(3)]
    gc.disable()
    try:
        for cls in (no.Adam, no.SGD, no.RMSProp):
            optimizer = cls(ps, lr=0.1, fused=fused)
            for p in ps:
                grad(p)
            optimizer.step()
            optimizer.zero_grad()
            optimizer.state_dict()
            ref = weakref.ref(optimizer)
            del optimizer
            assert ref() is None, cls.__name__
    finally:
        gc.enable()
        gc.collect()  # the cyclic garbage of the block (pyopencl's) goes now, not in a later test


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
