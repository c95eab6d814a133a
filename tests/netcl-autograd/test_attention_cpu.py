"""attention_cpu.cl, the CPU's scaled dot-product attention: chosen on a CPU device, eight
rows a work-item, and right where the rows end inside a work-item's eight and causality
cuts across them (the parity table in test_ag_attention.py runs
these kernels too)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyopencl as cl
import pytest
import torch
import torch.nn.functional as F

import netcl.autograd as ag
from netcl.core.device import manager
from netcl.core.tensor import from_numpy, launch, ops

pytestmark = pytest.mark.skipif(manager.default("auto").type != "cpu",
                                reason="attention_cpu.cl runs on a CPU device only")

# As test_ag_attention.py's TOL: fp32 rounding of length-E dots and S-term sums is a few
# times 2^-24 per term; 300 terms stay well inside 4e-6 of the largest entry.
TOL = 4e-6


def test_causal_rows_over_several_work_groups_match_torch(monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    """300 query and key rows: 38 work-items of eight rows a head, the last with four;
    each work-item's keys end at its last row, and its queries start at its first key."""
    rng = np.random.default_rng(0)
    data = {n: rng.standard_normal((2, 300, 4)) for n in ("q", "k", "v", "grad")}
    seen: list[tuple[str, tuple[int, ...], Any]] = []
    enqueue = launch._ENQUEUE

    def recording(queue: object, kernel: cl.Kernel, global_size: tuple[int, ...],
                  local_size: Any, *rest: object) -> object:
        seen.append((kernel.function_name, tuple(global_size), local_size))
        return enqueue(queue, kernel, global_size, local_size, *rest)

    monkeypatch.setattr(launch, "_ENQUEUE", recording)
    q, k, v = (from_numpy(data[n].astype(np.float32)).requires_grad_() for n in "qkv")
    with ag.Tape() as tape:
        out = ops.scaled_dot_product_attention(q, k, v, is_causal=True)
        loss = ops.sum(ops.mul(out, from_numpy(data["grad"].astype(np.float32))))
    tape.backward(loss)
    ours = [out.numpy(), q.grad.numpy(), k.grad.numpy(), v.grad.numpy()]

    tq, tk, tv = (torch.tensor(data[n], requires_grad=True) for n in "qkv")
    reference = F.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    reference.backward(torch.tensor(data["grad"]))
    theirs = [t.detach().numpy() for t in (reference, tq.grad, tk.grad, tv.grad)]
    for label, a, b in zip(("out", "dq", "dk", "dv"), ours, theirs, strict=True):
        scale = max(float(np.abs(b).max()), 1.0)
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL * scale, err_msg=label)

    launched = {name: (size, tuple(local)) for name, size, local in seen if "sdpa" in name}
    assert launched == {name: ((38, 2), (38, 2)) for name in
                        ("sdpa_forward_cpu", "sdpa_backward_q_cpu", "sdpa_backward_kv_cpu")}
