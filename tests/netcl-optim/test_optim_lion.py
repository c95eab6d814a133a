"""Lion against a float64 reference of the paper's update (torch has no Lion).

Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2:
c = beta1 m + (1 - beta1) g; p = p - lr (sign(c) + wd p); m = beta2 m + (1 - beta2) g.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from optim_cases import SHAPES, _case, gradients, initial_params

import netcl.optim as no
from netcl.core.tensor import Parameter, from_numpy

STEPS = 200
CASES = [
    {"lr": 1e-3},
    {"lr": 1e-3, "weight_decay": 0.5},
    {"lr": 3e-3, "betas": (0.5, 0.9), "maximize": True, "weight_decay": 0.1},
]


def reference(p: np.ndarray[Any, Any], grads: list[np.ndarray[Any, Any]], lr: float,
              betas: tuple[float, float], weight_decay: float,
              maximize: bool) -> np.ndarray[Any, Any]:
    beta1, beta2 = betas
    p, m = p.astype(np.float64), np.zeros(p.shape)
    for g in grads:
        g = -g.astype(np.float64) if maximize else g.astype(np.float64)
        c = beta1 * m + (1 - beta1) * g
        p = p - lr * (np.sign(c) + weight_decay * p)
        m = beta2 * m + (1 - beta2) * g
    return p


@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: "-".join(map(str, k)))
@pytest.mark.parametrize("fused", [None, False])
def test_matches_float64_reference(kwargs: dict[str, Any], fused: bool | None) -> None:
    case = _case("lion", "Lion")
    start = initial_params(case)
    params = [Parameter(from_numpy(v)) for v in start]
    optimizer = no.Lion(params, **kwargs, fused=fused)
    stream = gradients(case)
    history = [next(stream) for _ in range(STEPS)]
    for grads in history:
        for p, g in zip(params, grads, strict=True):
            p.grad = from_numpy(g)
        optimizer.step()
    full = {"betas": (0.9, 0.99), "weight_decay": 0.0, "maximize": False, **kwargs}
    for i, (p, v) in enumerate(zip(params, start, strict=True)):
        expected = reference(v, [grads[i] for grads in history], **full)  # type: ignore[misc]
        # Each step rounds p (and the decay's product) once in float32: about 1 ulp of
        # |p| a step, so 200 steps stay within 200 ulp of the largest |p|. A sign flip
        # (c within rounding of 0) would cost 2 lr, far beyond that; none may occur.
        atol = STEPS * float(np.spacing(np.float32(np.abs(expected).max())))
        np.testing.assert_allclose(p.numpy(), expected, rtol=0, atol=atol,
                                   err_msg=f"param {i} of shape {SHAPES[i]}")


@pytest.mark.smoke
def test_state_dict_round_trip_and_no_step_count() -> None:
    case = _case("lion", "Lion")
    params = [Parameter(from_numpy(v)) for v in initial_params(case)]
    optimizer = no.Lion(params, lr=1e-3, weight_decay=0.1)
    stream = gradients(case)
    for grads in [next(stream) for _ in range(3)]:
        for p, g in zip(params, grads, strict=True):
            p.grad = from_numpy(g)
        optimizer.step()
    saved = optimizer.state_dict()
    assert list(saved["state"][0]) == ["exp_avg"]
    copies = [Parameter(from_numpy(p.numpy())) for p in params]
    other = no.Lion(copies, lr=1e-3, weight_decay=0.1)
    other.load_state_dict(saved)
    grads = next(stream)
    for opt, ps in ((optimizer, params), (other, copies)):
        for p, g in zip(ps, grads, strict=True):
            p.grad = from_numpy(g)
        opt.step()
    for a, b in zip(params, copies, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
