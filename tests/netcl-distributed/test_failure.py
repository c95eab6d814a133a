"""A rank that raises ends the whole job with its error printed, never a hang."""

from __future__ import annotations

from pathlib import Path

import pytest
from mpirun import run

FAILING = Path(__file__).with_name("failing.py")
# A job that aborts ends within seconds; one that hangs runs into this.
HANG_S = 60


@pytest.mark.parametrize("ranks", [2, 4])
def test_a_rank_that_raises_aborts_every_rank(ranks: int) -> None:
    result, seconds = run(ranks, FAILING, "raise", deadline=HANG_S)
    assert result.returncode != 0
    assert f"rank {ranks - 1} of {ranks} raised; aborting the job" in result.stderr, result.stderr
    assert "ValueError: this rank's data is corrupt" in result.stderr, result.stderr
    assert "finished" not in result.stdout
    assert seconds < HANG_S


def test_parameter_shapes_that_differ_across_ranks_are_refused_at_wrap() -> None:
    result, _ = run(2, FAILING, "shapes", deadline=HANG_S)
    assert result.returncode != 0
    assert (
        "ValueError: DistributedDataParallel: the ranks' models differ: tensor 0 is '0.weight' "
        "of shape (9, 4) and dtype float32 on rank 1 but '0.weight' of shape (8, 4)"
    ) in result.stderr, result.stderr
    assert "finished" not in result.stdout
