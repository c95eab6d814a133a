"""DistributedDataParallel on 2 and 4 ranks: its mechanics, and the same training as one process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mpirun import ROOT, last_json, run

DIGITS = ROOT / "tools" / "ddp_digits.py"
# Small and short: every rank builds its PoCL kernels, and CI has 2 cores for 4 ranks.
TRAINING = ("--epochs", "1", "--hidden", "16", "--json")
# float32 sums in another order (per-rank partial means, then the all-reduce) over 30 Adam
# steps: measured differences are ~1e-7 relative.
RTOL = 1e-5


@pytest.fixture(scope="module")
def one_process() -> dict[str, Any]:
    """The plain-process run; it also fills the kernel disk cache that the ranks then share."""
    result, _ = run(0, DIGITS, *TRAINING)
    return last_json(result)


def test_ddp_mechanics_on_two_ranks() -> None:
    result, _ = run(2, Path(__file__).with_name("ddp_checks.py"))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert result.stdout.count("ddp checks passed") == 2


@pytest.mark.parametrize("ranks", [2, 4])
def test_ranks_train_as_one_process(ranks: int, one_process: dict[str, Any]) -> None:
    summary = last_json(run(ranks, DIGITS, *TRAINING)[0])
    assert summary["world_size"] == ranks
    assert summary["loss"] == pytest.approx(one_process["loss"], rel=RTOL)
    assert summary["accuracy"] == pytest.approx(one_process["accuracy"], abs=1 / 357)
    assert summary["state_bytes_per_rank"] == 8 * summary["params"]  # DDP keeps Adam whole
