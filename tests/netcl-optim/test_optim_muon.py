"""Muon against a float64 reference of torch's algorithm and against torch.optim.Muon.

torch runs the Newton-Schulz iterations in bfloat16. With ``ns_dtype="float32"`` netcl
is compared with a float64 reference and with torch's iterations run in float32 (its
own ``_zeropower_via_newtonschulz`` minus the bfloat16 cast, patched in): that checks
the hyperparameters, defaults, transposes and lr adjustments are torch's, and the
numbers. With the default ``ns_dtype="bfloat16"`` netcl is compared with torch as it is.

Tolerance, derived: a float32 matmul of inner size K is within about K * 2^-24 of
exact (relative to its operands' magnitudes, which stay near 1 once X is
normalised); each of the three matmuls of an iteration contributes that, and an
iteration's polynomial a x + b x^3 + c x^5 has slope at most 4 on the singular
values it meets (|p'(x)| <= 4 on [0, 1.2] for torch's coefficients), so after k
iterations X is within 4^k * 3 * K * 2^-24 of exact. Each step moves p by
lr * s * X, so after n steps p is within n * lr * s * that (plus the momentum's
few ulps).
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

import numpy as np
import pytest
import torch
import torch.optim._muon as torch_muon
from optim_cases import KernelNames

import netcl.optim as no
from netcl.core.tensor import Parameter, from_numpy
from netcl.core.tensor.launch import observing
from netcl.core.tensor.ops.matmul_tiles import MmaTile

muon_module = importlib.import_module("netcl.optim.functional.muon")
gemm = importlib.import_module("netcl.core.tensor.ops.gemm")

# The repeated shapes are orthogonalised as stacks (one set of launches for both).
SHAPES = [(7, 5), (5, 7), (16, 16), (3, 40), (7, 5), (16, 16)]
STEPS = 10


def ns_reference(u: np.ndarray[Any, Any], coefficients: tuple[float, float, float],
                 steps: int, eps: float) -> np.ndarray[Any, Any]:
    a, b, c = coefficients
    x = u if u.shape[0] <= u.shape[1] else u.T
    x = x / max(np.linalg.norm(x), eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x if u.shape[0] <= u.shape[1] else x.T


def reference_step(p: Any, g: Any, buf: Any, h: dict[str, Any]) -> tuple[Any, Any]:
    buf = buf + (1 - h["momentum"]) * (g - buf)
    u = g + h["momentum"] * (buf - g) if h["nesterov"] else buf
    o = ns_reference(u, h["ns_coefficients"], h["ns_steps"], h["eps"])
    rows, cols = p.shape
    scale = (0.2 * np.sqrt(max(rows, cols)) if h["adjust_lr_fn"] == "match_rms_adamw"
             else np.sqrt(max(1, rows / cols)))
    return p * (1 - h["lr"] * h["weight_decay"]) - h["lr"] * scale * o, buf


def bound(h: dict[str, Any], shape: tuple[int, int]) -> float:
    rows, cols = shape
    scale = 0.2 * np.sqrt(max(rows, cols)) if h["adjust_lr_fn"] == "match_rms_adamw" else (
        np.sqrt(max(1, rows / cols)))
    per_x = 4.0 ** h["ns_steps"] * 3 * max(shape) * 2.0**-24
    return STEPS * h["lr"] * scale * per_x + 1e-6


CASES = [
    {},
    {"lr": 2e-2, "weight_decay": 0.0, "nesterov": False, "momentum": 0.9},
    {"lr": 2e-2, "adjust_lr_fn": "match_rms_adamw", "ns_steps": 3},
    {"lr": 1e-2, "ns_coefficients": (2.0, -1.5, 0.5), "eps": 1e-5, "adjust_lr_fn": "original"},
]


def full(kwargs: dict[str, Any]) -> dict[str, Any]:
    defaults = {"lr": 1e-3, "weight_decay": 0.1, "momentum": 0.95, "nesterov": True,
                "ns_coefficients": (3.4445, -4.775, 2.0315), "eps": 1e-7, "ns_steps": 5,
                "adjust_lr_fn": None}
    return {**defaults, **kwargs}


def run(kwargs: dict[str, Any], ns_dtype: str = "float32", steps: int = STEPS
        ) -> tuple[list[Any], list[np.ndarray[Any, Any]], list[Any]]:
    rng = np.random.default_rng(11)
    start = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(steps)]
    params = [Parameter(from_numpy(v)) for v in start]
    optimizer = no.Muon(params, **kwargs, ns_dtype=ns_dtype)
    for step in grads:
        for p, g in zip(params, step, strict=True):
            p.grad = from_numpy(g)
        optimizer.step()
    return [p.numpy() for p in params], start, grads


@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: "-".join(map(str, k)) or "defaults")
def test_matches_float64_reference(kwargs: dict[str, Any]) -> None:
    ours, start, grads = run(kwargs)
    h = full(kwargs)
    for i, shape in enumerate(SHAPES):
        p, buf = start[i].astype(np.float64), np.zeros(shape)
        for step in grads:
            p, buf = reference_step(p, step[i].astype(np.float64), buf, h)
        np.testing.assert_allclose(ours[i], p, rtol=0, atol=bound(h, shape),
                                   err_msg=f"matrix {i} of shape {shape}")


def _float32_newton_schulz(grad: torch.Tensor, ns_coefficients: tuple[float, float, float],
                           ns_steps: int, eps: float) -> torch.Tensor:
    """torch's _zeropower_via_newtonschulz with its bfloat16 cast left out."""
    a, b, c = ns_coefficients
    x = grad.T if grad.size(0) > grad.size(1) else grad.clone()
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if grad.size(0) > grad.size(1) else x


@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: "-".join(map(str, k)) or "defaults")
def test_matches_torch_with_float32_iterations(kwargs: dict[str, Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_muon, "_zeropower_via_newtonschulz", _float32_newton_schulz)
    ours, start, grads = run(kwargs)
    tparams = [torch.tensor(v, requires_grad=True) for v in start]
    topt = torch.optim.Muon(tparams, **kwargs)
    for step in grads:
        for tp, g in zip(tparams, step, strict=True):
            tp.grad = torch.from_numpy(g)
        topt.step()
    h = full(kwargs)
    for i, shape in enumerate(SHAPES):
        np.testing.assert_allclose(ours[i], tparams[i].detach().numpy(), rtol=0,
                                   atol=2 * bound(h, shape), err_msg=f"matrix {i}")


@pytest.mark.parametrize("ns_dtype", ["bfloat16", "float32"])
def test_matrices_of_one_shape_are_stepped_as_one_stack_bit_for_bit(
        ns_dtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three (9, 4) matrices (and a (4, 9) between them) step exactly as each would alone,
    and their Newton-Schulz iterations are one set of launches: only the momentum and the
    apply launch once a matrix. Cut into stacks of at most two (MAX_STACK_ELEMENTS), the
    bits stay the same and the iterations launch once a stack."""
    rng = np.random.default_rng(13)
    shapes = [(9, 4), (4, 9), (9, 4), (9, 4)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]

    def stepped(indices: list[int]) -> tuple[list[np.ndarray[Any, Any]], list[str]]:
        params = [Parameter(from_numpy(start[i])) for i in indices]
        optimizer = no.Muon(params, lr=0.02, ns_dtype=ns_dtype)
        observed = KernelNames()
        for k, step in enumerate(grads):
            for p, i in zip(params, indices, strict=True):
                p.grad = from_numpy(step[i])
            # The second step: the first also fills each new momentum buffer with zeros.
            with observing(observed) if k == 1 else contextlib.nullcontext():
                optimizer.step()
        return [p.numpy() for p in params], observed.names

    step_kernels = {"muon_momentum", "muon_apply"}
    together, names = stepped([0, 1, 2, 3])
    alone_iterations = []
    for i in range(4):
        alone, alone_names = stepped([i])
        assert np.array_equal(together[i], alone[0]), f"matrix {i}"
        alone_iterations.append(len([n for n in alone_names if n not in step_kernels]))
    assert sorted(n for n in names if n in step_kernels) == ["muon_apply"] * 4 + [
        "muon_momentum"] * 4
    iterations = [n for n in names if n not in step_kernels]
    # Two stacks, (9, 4) x 3 and (4, 9): one matrix's iterations of each shape.
    assert len(iterations) == alone_iterations[0] + alone_iterations[1]
    monkeypatch.setattr(muon_module, "MAX_STACK_ELEMENTS", 2 * 9 * 4)
    halves, half_names = stepped([0, 1, 2, 3])
    assert all(np.array_equal(x, y) for x, y in zip(halves, together, strict=True))
    assert len([n for n in half_names if n not in step_kernels]) == (
        2 * alone_iterations[0] + alone_iterations[1])


def test_state_dict_crosses_to_torch_and_back() -> None:
    rng = np.random.default_rng(12)
    values = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    params = [Parameter(from_numpy(v)) for v in values]
    optimizer = no.Muon(params, lr=1e-2)
    for p in params:
        p.grad = from_numpy(rng.standard_normal(p.shape).astype(np.float32))
    optimizer.step()
    saved = optimizer.state_dict()
    tparams = [torch.tensor(p.numpy(), requires_grad=True) for p in params]
    topt = torch.optim.Muon(tparams, lr=1e-2)
    topt.load_state_dict({
        "state": {i: {k: torch.from_numpy(np.array(v)) for k, v in entry.items()}
                  for i, entry in saved["state"].items()},
        "param_groups": saved["param_groups"],
    })
    for i, entry in saved["state"].items():
        assert list(entry) == ["momentum_buffer"]
        np.testing.assert_array_equal(topt.state[tparams[i]]["momentum_buffer"].numpy(),
                                      entry["momentum_buffer"])
    back = no.Muon([Parameter(from_numpy(v)) for v in values], lr=1e-2)
    back.load_state_dict(topt.state_dict())
    for i, entry in back.state_dict()["state"].items():
        expected = saved["state"][i]["momentum_buffer"]
        np.testing.assert_array_equal(entry["momentum_buffer"], expected)
    assert back.param_groups[0]["adjust_lr_fn"] is None


@pytest.mark.smoke
def test_refuses_what_torch_refuses() -> None:
    with pytest.raises(ValueError, match=r"params\[1\] has shape \(3,\); Muon steps 2-D"):
        no.Muon([Parameter(from_numpy(np.zeros((2, 2), np.float32))),
                 Parameter(from_numpy(np.zeros(3, np.float32)))])
    w = Parameter(from_numpy(np.zeros((2, 2), np.float32)))
    with pytest.raises(ValueError, match="adjust_lr_fn"):
        no.Muon([w], adjust_lr_fn="bogus")
    with pytest.raises(ValueError, match="ns_steps"):
        no.Muon([w], ns_steps=100)
    with pytest.raises(ValueError, match="ns_coefficients"):
        no.Muon([w], ns_coefficients=(1.0, 2.0))  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", CASES[:3], ids=lambda k: "-".join(map(str, k)) or "defaults")
def test_bfloat16_iterations_match_torchs(kwargs: dict[str, Any]) -> None:
    """netcl rounds to bfloat16 where torch does; what differs is float32 accumulation order
    inside a product (K terms: about K * 2^-24 relative), which moves a bfloat16 rounding
    only for a value that close to a rounding boundary, a fraction of about K * 2^-16 of
    them per product. Such a flip is one bfloat16 unit (2^-8 relative) of one element of X;
    the iterations spread it (by at most 4 an iteration on the singular values they meet,
    but a flip is rare), so elements differ by a few units of lr * s * 2^-8 at most, and
    most are equal (measured: every element of most matrices, 0.32 units at most)."""
    ours, start, grads = run(kwargs, ns_dtype="bfloat16")
    tparams = [torch.tensor(v, requires_grad=True) for v in start]
    topt = torch.optim.Muon(tparams, **kwargs)
    for step in grads:
        for tp, g in zip(tparams, step, strict=True):
            tp.grad = torch.from_numpy(g)
        topt.step()
    h = full(kwargs)
    float32_run, _, _ = run(kwargs)
    for i, shape in enumerate(SHAPES):
        theirs = tparams[i].detach().numpy()
        rows, cols = shape
        scale = (0.2 * np.sqrt(max(rows, cols)) if h["adjust_lr_fn"] == "match_rms_adamw"
                 else np.sqrt(max(1, rows / cols)))
        unit = h["lr"] * scale * 2.0**-8
        np.testing.assert_allclose(ours[i], theirs, rtol=0, atol=4 * unit,
                                   err_msg=f"matrix {i}")
        # And closer to torch than the float32 iterations are: the rounding is torch's.
        assert np.abs(ours[i] - theirs).mean() < np.abs(float32_run[i] - theirs).mean()


def test_bfloat16_iterations_on_the_tensor_core_kernel_match_torchs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU with tensor cores runs the iterations' bf16 products on matmul_mma.cl (the
    products into float32 sums through out_dtype): emulated here, the steps equal the panel
    kernel's bit for bit on these shapes (whose agreement with torch
    test_bfloat16_iterations_match_torchs checks). A one-warp 16 x 16 x 16 tile, which PoCL
    compiles far faster than the 64 x 64 small tiles (the test took 34 s with those on
    this machine's PoCL, 49 s in CI; 11 s with this one)."""
    monkeypatch.setattr(gemm, "choose_mma_tile", lambda *args: MmaTile(16, 16, 16, 1, 1))
    kwargs: dict[str, Any] = {"lr": 2e-2}
    with gemm.emulated_tensor_cores():
        observed = KernelNames()
        with observing(observed):
            ours, _, _ = run(kwargs, ns_dtype="bfloat16", steps=2)
    assert "matmul_mma" in observed.names and "matmul_panel" not in observed.names
    panel, _, _ = run(kwargs, ns_dtype="bfloat16", steps=2)
    assert all(np.array_equal(x, y) for x, y in zip(ours, panel, strict=True))
