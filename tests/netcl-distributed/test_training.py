"""tools/ddp_digits.py on 2 and 4 ranks, DDP and ZeRO-1, trains as one process does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mpirun import ROOT, last_json, run

DIGITS = ROOT / "tools" / "ddp_digits.py"
# Small and short: every rank builds its PoCL kernels, and CI has 2 cores for 4 ranks.
# 18 hidden units: 75 * 18 + 10 = 1360 parameters, which 2 and 4 ranks shard evenly.
TRAINING = ("--hidden", "18", "--json")
# float32 sums in another order (per-rank partial means, then the all-reduce) over 30 Adam
# steps an epoch: the measured differences are about 1e-7 relative.
RTOL = 1e-5


@pytest.fixture(scope="module")
def one_process() -> dict[str, Any]:
    """One epoch as a plain process; it also fills the kernel disk cache the ranks then share."""
    result, _ = run(0, DIGITS, *TRAINING, "--epochs", "1")
    return last_json(result)


@pytest.mark.parametrize("zero", [False, True], ids=["ddp", "zero"])
@pytest.mark.parametrize("ranks", [2, 4])
def test_ranks_train_as_one_process(ranks: int, zero: bool, one_process: dict[str, Any]) -> None:
    flags = ("--zero",) if zero else ()
    summary = last_json(run(ranks, DIGITS, *TRAINING, "--epochs", "1", *flags)[0])
    assert summary["world_size"] == ranks
    assert summary["loss"] == pytest.approx(one_process["loss"], rel=RTOL)
    assert summary["accuracy"] == pytest.approx(one_process["accuracy"], abs=1 / 357)
    # Adam keeps 8 bytes a parameter; ZeRO-1 spreads them over the ranks.
    params = summary["params"]
    assert summary["state_bytes_per_rank"] == (8 * params // ranks if zero else 8 * params)


def test_a_checkpoint_from_four_ranks_resumes_on_two(tmp_path: Path) -> None:
    checkpoint = str(tmp_path / "digits.pkl")
    saved = run(4, DIGITS, *TRAINING, "--epochs", "1", "--zero", "--save", checkpoint)[0]
    assert saved.returncode == 0, saved.stderr
    resumed = last_json(run(2, DIGITS, *TRAINING, "--epochs", "2", "--zero",
                            "--resume", checkpoint)[0])
    straight = last_json(run(0, DIGITS, *TRAINING, "--epochs", "2")[0])
    assert resumed["loss"] == pytest.approx(straight["loss"], rel=RTOL)
    assert resumed["state_bytes_per_rank"] == 8 * resumed["params"] // 2
