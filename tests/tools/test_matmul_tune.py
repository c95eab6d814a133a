"""tools/bench/matmul_tune.py's model mode, without timing anything: the GEMMs a step records,
the candidates a shape gets, and the tile rows' JSON, loading and nearest-match check."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
import matmul_tune as tune  # a script under tools/bench/, not a package
import tile_rows

from netcl.core.device import manager
from netcl.core.tensor import Tensor, from_numpy, ops
from netcl.core.tensor.ops import conv, gemm, matmul_tiles
from netcl.core.tensor.ops.matmul_tiles import TileConfig as T

H200 = "NVIDIA H200"


@pytest.fixture
def planned_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiled plans of no launches, and convolutions through implicit_gemm even on a CPU:
    what choose_tile is asked runs as on a GPU, with no kernel built."""
    monkeypatch.setattr(gemm, "_tiled_plan", lambda *args, **kwargs: gemm.Plan((), ()))
    monkeypatch.setattr(conv, "_unfolds", lambda *args: False)


def _conv_step() -> None:
    device = manager.default("auto")
    rng = np.random.default_rng(0)
    x = from_numpy(rng.standard_normal((2, 3, 7, 7), np.float32), device)
    for shape, stride, padding in (((4, 3, 3, 3), 2, 1), ((4, 3, 1, 1), 2, 0)):
        w = from_numpy(rng.standard_normal(shape, np.float32), device)
        out = ops.conv2d(x, w, stride, padding)
        ops.conv2d_grads(out, x, w, stride, padding, needs=(True, True, False))
    a = from_numpy(rng.standard_normal((8, 16), np.float32), device)
    for _ in range(2):  # two layers of one shape: two launches, one plan key
        b = from_numpy(rng.standard_normal((4, 16), np.float32), device)
        ops.matmul(a, ops.transpose(b, 0, 1))


def test_a_step_records_its_products_and_each_conv_pass_with_the_key_choose_tile_gets(
        planned_only: None) -> None:
    device = manager.default("auto")
    with tune.recorded_problems(device) as found:
        _conv_step()
    strided = [tune.ConvPass(mode, (2, 3, 7, 7), (4, 3, 3, 3), (2, 2), (1, 1))
               for mode in (1, 3, 2)]
    pointwise = [tune.ConvPass(mode, (2, 3, 7, 7), (4, 3, 1, 1), (2, 2), (0, 0))
                 for mode in (1, 3, 2)]
    assert found == {**{p: 1 for p in [*strided, *pointwise]}, tune.Gemm("nt", 8, 4, 16): 2}
    # implicit_gemm's own sizes for the 3x3 stride-2 forward: O x (C*9) @ (C*9) x (4*4)
    assert strided[0].gemm == tune.Gemm("conv1", 4, 16, 27, 2)
    assert gemm.choose_tile is matmul_tiles.choose_tile and ops.conv2d is conv.conv2d  # put back


def test_recording_fails_where_a_conv_pass_derives_another_key_than_implicit_gemm_asks(
        planned_only: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tune.ConvPass, "gemm", property(lambda self: tune.Gemm("conv1", 1, 1, 1)))
    with (pytest.raises(AssertionError, match=r"ConvPass\.gemm is out of date"),
          tune.recorded_problems(manager.default("auto"))):
        _conv_step()


def test_candidates_start_at_todays_tile_and_fit_the_shape() -> None:
    today = T(128, 128, 16, 8, 8)
    narrow = tune.shape_candidates(tune.Gemm("conv1", 512, 16, 4608, 128), 132, today)
    assert narrow[0] == today and all(t.bn <= 32 for t in narrow[1:])
    # 64 channels: no 128-row tile past today's, and no split K on a convolution
    channels = tune.shape_candidates(tune.Gemm("conv3", 64, 1024, 576, 128), 132, today)
    assert len(channels) == tune.MAX_CANDIDATES
    assert all(t.bm <= 64 and t.split_k == 1 for t in channels[1:])
    # a single small product gets split-K tiles; a big one the big pool
    small = tune.shape_candidates(tune.Gemm("tn", 512, 512, 8192), 132, today, limit=8)
    assert any(t.split_k > 1 for t in small) and len(small) == 8
    big = tune.shape_candidates(tune.Gemm("nt", 8192, 2048, 512), 132, today)
    assert big[1:3] == tune.BIG_POOL[:2]


def test_rows_survive_json_and_a_bad_row_is_named(tmp_path: Path) -> None:
    rows = (("nt", 8192, 65, 512, T(64, 16, 16, 4, 4)),
            ("conv2", 65536, 4608, 16, T(128, 64, 32, 8, 8, swizzle=True, k_slices=2)),
            ("tn", 512, 512, 8192, T(32, 32, 16, 4, 4, 8)))
    path = tmp_path / "rows.json"
    tile_rows.write_rows(path, "H200", rows)
    assert tile_rows.read_rows(path) == ("H200", rows)
    path.write_text('{"device": "H200", "rows": [["nt", 1, 2, 3, {"bm": 7}]]}')
    with pytest.raises(ValueError, match="row 0"):
        tile_rows.read_rows(path)


def test_rows_in_front_are_chosen_while_applied_and_everything_is_put_back() -> None:
    device = manager.default("auto")
    tile = T(64, 16, 16, 4, 4)
    before = matmul_tiles.MEASURED["H200"]
    plans = device.kernels.plans
    rows = tile_rows.TileRows("H200", (("nt", 8192, 65, 512, tile),))
    assert matmul_tiles.choose_tile(H200, 132, "nt", 8192, 65, 512, 1) != tile
    with rows.applied(device):
        assert matmul_tiles.choose_tile(H200, 132, "nt", 8192, 65, 512, 1) == tile
        assert matmul_tiles.MEASURED["H200"][1:] == before
        assert device.kernels.plans is not plans  # matmul plans of the rows' own
    assert matmul_tiles.MEASURED["H200"] is before and device.kernels.plans is plans
    other = tile_rows.TileRows("some GPU", (("nn", 1, 1, 1, tile),))
    with other.applied(device):
        assert matmul_tiles.choose_tile("some GPU", 8, "tn", 99, 99, 99, 1) == tile
    assert "some GPU" not in matmul_tiles.MEASURED


def test_nearest_match_check_names_problems_whose_row_another_shadows() -> None:
    a, b = T(64, 64, 16, 4, 4), T(32, 32, 16, 4, 4)
    apart = [(tune.Gemm("nn", 128, 64, 64), a), (tune.Gemm("nt", 128, 64, 64), b)]
    assert tune.mismatched_rows(apart, matmul_tiles.MEASURED["H200"]) == []
    # a batch of 2 x 64 rows has the key of 128 rows: the second row never wins
    shadowed = [(tune.Gemm("nn", 128, 64, 64), a), (tune.Gemm("nn", 64, 64, 64, 2), b)]
    wrong = tune.mismatched_rows(shadowed, ())
    assert len(wrong) == 1 and "nn 2 x 64x64@64x64" in wrong[0]


def test_on_a_cpu_a_convolution_counts_as_its_passes_not_the_products_it_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gemm, "_tiled_plan", lambda *args, **kwargs: gemm.Plan((), ()))
    device = manager.default("auto")
    if device.type != "cpu":
        pytest.skip("conv_cpu runs on a CPU device only")
    with tune.recorded_problems(device) as found:
        _conv_step()
    assert sorted(p.name for p in found) == sorted(
        p.name for p in [*(tune.ConvPass(mode, (2, 3, 7, 7), (4, 3, k, k), (2, 2), (k // 2,) * 2)
                           for mode in (1, 3, 2) for k in (3, 1)), tune.Gemm("nt", 8, 4, 16)])


def _case(outputs: dict[T, float], size: int) -> tune.Case:
    """A problem of ``size`` outputs, all 1, whose run at a tile gives ``outputs[tile]``
    everywhere; the bound is 0.5 a term."""
    device = manager.default("auto")
    want = np.ones(size)

    def run(tile: T) -> Tensor:
        return from_numpy(np.full(size, outputs[tile], np.float32), device)
    return tune.Case(tune.Gemm("nn", size, 1, 1), run, lambda: None, lambda: None, want,
                     np.full(size, 0.5))


def _tuned(outputs: dict[T, float], seconds: list[float], size: int,
           monkeypatch: pytest.MonkeyPatch) -> tune.Result:
    monkeypatch.setattr(tune, "_seconds", lambda sides: [1.0, *seconds])
    return tune.tune(_case(outputs, size), list(outputs), manager.default("auto"))


FAST, MIDDLE, SLOW = T(64, 64, 16, 4, 4), T(32, 32, 16, 4, 4), T(64, 32, 16, 4, 4)


def test_a_nan_from_any_checked_tile_fails_its_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # today's tile (first) is right, the second returns NaN: max() over Python floats
    # would have swallowed it
    result = _tuned({SLOW: 1.0, FAST: float("nan")}, [2.0, 1.0], 4, monkeypatch)
    assert result.failed == [FAST] and result.errors[FAST] == float("inf")
    assert result.best == SLOW


def test_the_fastest_tile_that_passes_wins_and_a_failing_one_keeps_its_problem(
        monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = {SLOW: 1.0, MIDDLE: 1.25, FAST: 3.0}  # FAST is wrong (error 4 bounds)
    small = _tuned(outputs, [3.0, 2.0, 1.0], 4, monkeypatch)
    assert small.best == MIDDLE and small.failed == [FAST]
    assert set(small.errors) == set(outputs)  # every tile checked at up to CHECK_ALL outputs
    # a big problem checks in speed order until one passes: SLOW is never run
    big = _tuned(outputs, [3.0, 2.0, 1.0], tune.CHECK_ALL + 1, monkeypatch)
    assert big.best == MIDDLE and list(big.errors) == [FAST, MIDDLE]
    none = _tuned({FAST: 3.0}, [1.0], 4, monkeypatch)
    assert none.winner is None
    with pytest.raises(ValueError, match="no tile passed"):
        none.best  # noqa: B018


def test_the_step_figures_are_retimed_side_by_side_not_the_winners_selection_sample(
        monkeypatch: pytest.MonkeyPatch) -> None:
    result = _tuned({SLOW: 1.0, FAST: 1.0}, [2.0, 1.0], 4, monkeypatch)
    case = _case({SLOW: 1.0, FAST: 1.0}, 4)
    ran: list[T] = []
    plain_run = case.run
    case.run = lambda tile: (ran.append(tile), plain_run(tile))[1]
    timed: list[tuple[int, bool]] = []

    def seconds(sides: list[tune.Contender], rounds: int = 3,
                interleave: bool = False) -> list[float]:
        timed.append((rounds, interleave))
        for call, _ in sides[1:]:
            call()
        return [3.0, 2.5, 1.5]
    monkeypatch.setattr(tune, "_seconds", seconds)
    again = tune.retimed(case, result, manager.default("auto"))
    # torch, today's tile (the first), the winner: in interleaved rounds
    assert timed == [(5, True)] and ran == [SLOW, FAST]
    assert again.step_seconds == (3.0, 2.5, 1.5) and again.best == FAST
