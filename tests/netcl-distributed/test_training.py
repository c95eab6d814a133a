"""tools/ddp_digits.py on 2 and 4 ranks, DDP and ZeRO-1, trains as one process does."""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def saved_on_four(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One epoch of ZeRO on 4 ranks, checkpointed: an equivalence case and a resume's start."""
    checkpoint = str(tmp_path_factory.mktemp("checkpoint") / "digits.pkl")
    result, _ = run(4, DIGITS, *TRAINING, "--epochs", "1", "--zero", "--save", checkpoint)
    return last_json(result), checkpoint


@pytest.mark.parametrize("zero", [False, True], ids=["ddp", "zero"])
@pytest.mark.parametrize("ranks", [2, 4])
def test_ranks_train_as_one_process(
    ranks: int, zero: bool, one_process: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    if ranks == 4 and zero:
        summary = request.getfixturevalue("saved_on_four")[0]
    else:
        flags = ("--zero",) if zero else ()
        summary = last_json(run(ranks, DIGITS, *TRAINING, "--epochs", "1", *flags)[0])
    assert summary["world_size"] == ranks
    assert summary["loss"] == pytest.approx(one_process["loss"], rel=RTOL)
    assert summary["accuracy"] == pytest.approx(one_process["accuracy"], abs=1 / 357)
    # Adam keeps 8 bytes a parameter; ZeRO-1 spreads them over the ranks.
    params = summary["params"]
    assert summary["state_bytes_per_rank"] == (8 * params // ranks if zero else 8 * params)


def test_bf16_compressed_gradients_still_train(one_process: dict[str, Any]) -> None:
    """Each step's gradients are rounded to bfloat16 (2**-8 relative) before they are summed,
    so the run leaves the float32 one's path: after one epoch its loss differed by 1.9e-4
    relative (measured). It must still train as that one does: the same loss (the start is
    ln 10 = 2.30, the end 0.86), the same accuracy to two test digits in 357, and not the
    float32 run's bits (the hook ran)."""
    summary = last_json(run(2, DIGITS, *TRAINING, "--epochs", "1", "--bf16-compress")[0])
    assert summary["loss"] != one_process["loss"]
    # A training-run allowance, not a bound derived from rounding: ten times the measured
    # 1.9e-4 (the roundings of 30 steps compound through Adam's path, which no per-operation
    # bound follows).
    assert summary["loss"] == pytest.approx(one_process["loss"], rel=2e-3)
    assert summary["accuracy"] == pytest.approx(one_process["accuracy"], abs=2 / 357)


def test_a_checkpoint_from_four_ranks_resumes_on_two(
    saved_on_four: tuple[dict[str, Any], str]
) -> None:
    checkpoint = saved_on_four[1]
    resumed = last_json(run(2, DIGITS, *TRAINING, "--epochs", "2", "--zero",
                            "--resume", checkpoint)[0])
    straight = last_json(run(0, DIGITS, *TRAINING, "--epochs", "2")[0])
    assert resumed["loss"] == pytest.approx(straight["loss"], rel=RTOL)
    assert resumed["state_bytes_per_rank"] == 8 * resumed["params"] // 2
