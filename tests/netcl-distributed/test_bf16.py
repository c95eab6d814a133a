"""DDP's bf16_compress_hook on 2 and 3 ranks (the checks live in bf16_checks.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bf16_reference import reference
from mpirun import run

from netcl.autograd import no_grad
from netcl.core.device import manager
from netcl.core.tensor import Tensor, bfloat16, empty, float32, from_numpy
from netcl.distributed.bf16_reducer import sum_in_rank_order


@pytest.mark.parametrize("ranks", [2, 3])  # 3: a rank order and a 1/K that are not trivial
def test_bf16_compress_hook(ranks: int) -> None:
    result, _ = run(ranks, Path(__file__).with_name("bf16_checks.py"))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert result.stdout.count("bf16 checks passed") == ranks


@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 5])
def test_rounding_and_sum_in_rank_order_equal_the_reference(ranks: int) -> None:
    """The device work of every rank, for K rows in one process: each row rounded to bfloat16
    (copy_, as the reducer's outgoing chunk) and the rows summed in float32 in rank order and
    scaled (sum_in_rank_order, as its incoming one), bit for bit against the float64
    reference; ties to even and magnitudes 2**-40 to 2**40 included, so that a wrong
    rounding, order or scale shows."""
    device = manager.default("cpu")
    rng = np.random.default_rng(ranks)
    count = 4096
    each = [(rng.standard_normal(count) * np.exp2(rng.uniform(-40, 40, count))
             ).astype(np.float32) for _ in range(ranks)]
    for g in each:  # a tie between two bfloat16 values: the low 16 bits exactly 0x8000
        g[:64].view(np.uint32)[:] = (g[:64].view(np.uint32) & 0xFFFF0000) | 0x8000
    rows = empty((ranks * count,), bfloat16, device)
    parts = [Tensor(rows.buffer, (count,), bfloat16, device, offset=r * count)
             for r in range(ranks)]
    with no_grad():
        for part, g in zip(parts, each, strict=True):
            part.copy_(from_numpy(g, device))
    out = empty((count,), float32, device)
    sum_in_rank_order(out, parts, 1.0 / ranks)
    np.testing.assert_array_equal(out.numpy(), reference(each))
