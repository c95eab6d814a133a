"""tools/bench/harness.py: the timing and the tables every bench script shares."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
import harness  # a script under tools/bench/, not a package

BENCH = Path(harness.__file__).parent
# Scripts that time something other than repeated calls of contenders, and why.
OWN_CLOCK = {"soak.py": "it times windows of one long training run, a netcl step beside a "
                        "torch step, to show the pool's bytes flat as it goes"}


# Modules the scripts import, which run nothing of their own.
LIBRARIES = {"harness.py", "tile_rows.py"}


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")
                                          if p.name not in LIBRARIES))
def test_every_bench_script_times_and_prints_through_the_harness(script: str) -> None:
    text = (BENCH / script).read_text()
    # One line or, past ruff's line length, a parenthesised list.
    assert re.search(r"^from harness import \(?[^)]*?\bReport\b", text, re.MULTILINE), (
        f"tools/bench/{script} does not print through harness.Report")
    if script not in OWN_CLOCK:
        assert "perf_counter" not in text, f"tools/bench/{script} keeps a timing loop of its own"


def test_contenders_are_sampled_in_rounds_each_sample_ending_in_its_sync() -> None:
    events: list[str] = []
    contenders = {name: (lambda name=name: events.append(name),
                         lambda name=name: events.append(f"{name} sync"))
                  for name in ("a", "b")}
    timings = harness.time_contenders(contenders, rounds=3, calls=2, warmup=1)
    assert set(timings) == {"a", "b"} and all(len(t.samples) == 3 for t in timings.values())
    warmup, rounds = events[:4], events[4:]
    assert warmup == ["a", "a sync", "b", "b sync"]
    assert rounds == ["a", "a", "a sync", "b", "b", "b sync"] * 3  # interleaved rounds


def test_whole_turns_take_every_sample_of_one_contender_first() -> None:
    events: list[str] = []
    contenders = {name: (lambda name=name: events.append(name), harness.no_sync)
                  for name in ("a", "b")}
    harness.time_contenders(contenders, rounds=2, calls=1, warmup=0, interleave=False)
    assert events == ["a", "a", "b", "b"]


def test_median_and_fastest_of_the_samples() -> None:
    timing = harness.Timing((3.0, 1.0, 2.0, 10.0, 4.0))
    assert (timing.median, timing.fastest) == (3.0, 1.0)


def test_a_table_prints_its_ratios_and_the_json_line_holds_them(
        capsys: pytest.CaptureFixture[str]) -> None:
    report = harness.Report("demo", "some device", json_line=True, peer="torch")
    table = report.table("ms per step", ["netcl", "torch", "notes"],
                         ratios=[("netcl", "torch")])
    table.row("small", {"netcl": 1.5, "torch": 3.0, "notes": "x"})
    table.row("no peer", {"netcl": 2.0})
    report.finish()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("demo: device some device; ") and "UTC" in out[0]
    assert "| case | netcl | torch | notes | netcl / torch |" in out
    assert "| small | 1.5 | 3 | x | **0.50** |" in out
    assert "| no peer | 2 | n/a | n/a | n/a |" in out
    record = json.loads(out[-1])
    assert record["peer"] == "torch" and record["device"] == "some device"
    assert record["tables"]["ms per step"]["small"]["netcl / torch"] == 0.5
    assert record["tables"]["ms per step"]["no peer"]["netcl / torch"] is None


def test_a_ratio_of_a_column_the_table_lacks_is_refused() -> None:
    report = harness.Report("demo", "some device")
    with pytest.raises(ValueError, match=r"\['peer'\] not in the table's"):
        report.table("t", ["netcl"], ratios=[("netcl", "peer")])


def test_results_hold_current_tables_and_history_holds_the_passes() -> None:
    # RESULTS.md is where things stand now; the story of each pass goes to history/.
    results = (BENCH / "RESULTS.md").read_text()
    assert len(results.splitlines()) < 300, "move earlier passes to tools/bench/history/"
    for linked in re.findall(r"`(history/[\w.-]+\.md)`", results):
        assert (BENCH / linked).is_file(), f"RESULTS.md names {linked}, which does not exist"
