"""The one way a benchmark under tools/bench/ times its contenders and prints their ratios.

A contender is ``(call, sync)``: one call of the work, and the wait for the device that
ends a sample (``device.synchronize``, ``torch.cuda.synchronize``, or ``no_sync`` where
the call returns finished). ``time_contenders`` warms each one up, then takes samples
in rounds, one sample of each contender per round, so a neighbour's load on a shared
machine falls on every contender alike; each sample is many calls and one sync, so a
call's cost includes the device's work. ``host_cost`` measures the other thing a bench
may want: the main thread's CPU time per call, which load from elsewhere does not enter.

``Report`` prints where and when the run was (device, UTC date, the command), then each
table as markdown, a row as soon as it is measured, with ``a / b`` ratio columns of the
pairs it names; with ``--json`` (``add_json_flag``) it prints everything once more as one
JSON line at the end, for a script to read the last line.

    report = Report("optimizer step", device=device.name, json_line=args.json)
    table = report.table("adam, ms per step", ["netcl", "torch"], ratios=[("netcl", "torch")])
    times = time_contenders({"netcl": (step, device.synchronize), "torch": (t_step, no_sync)})
    table.row("1 tensor", {name: t.median * 1e3 for name, t in times.items()})
    report.finish()
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Contender = tuple[Callable[[], object], Callable[[], None]]  # (one call, wait for the device)
Cell = float | int | str | None  # None: not measured (printed n/a)


def no_sync() -> None:
    """The sync of a contender whose call returns finished (numpy, torch on the CPU)."""


@dataclass(frozen=True)
class Timing:
    """Seconds per call, one sample per round."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def fastest(self) -> float:
        return min(self.samples)


def time_contenders(contenders: Mapping[str, Contender], *, rounds: int = 7,
                    sample_s: float = 0.05, calls: int | None = None, warmup: int = 3,
                    interleave: bool = True, pause_s: float = 0.0) -> dict[str, Timing]:
    """Wall time per call of each contender over ``rounds`` samples.

    A sample is ``calls`` calls (None: as many as take about ``sample_s``, sized after the
    warm-up) followed by the contender's sync. ``interleave`` takes one sample of each
    contender per round; without it each contender takes all its samples in one turn,
    after ``pause_s`` seconds of sleep (on a CPU, OpenBLAS's, OpenMP's and PoCL's idle
    workers spin for a while after a call and steal the next contender's cores:
    alternating cut torch CPU to a tenth of its speed at 256^3 matmul).
    """
    sizes: dict[str, int] = {}
    for name, (call, sync) in contenders.items():  # builds, pools and plans; then size
        for _ in range(warmup):
            call()
        sync()
        if calls is not None:
            sizes[name] = calls
            continue
        start, count = time.perf_counter(), 0
        while count < 1 or time.perf_counter() - start < sample_s / 4:
            call()
            count += 1
        sync()
        sizes[name] = max(1, round(count * sample_s / (time.perf_counter() - start)))

    samples: dict[str, list[float]] = {name: [] for name in contenders}

    def sample(name: str) -> None:
        call, sync = contenders[name]
        start = time.perf_counter()
        for _ in range(sizes[name]):
            call()
        sync()
        samples[name].append((time.perf_counter() - start) / sizes[name])

    if interleave:
        for _ in range(rounds):
            for name in contenders:
                sample(name)
    else:
        for name in contenders:
            time.sleep(pause_s)
            for _ in range(rounds):
                sample(name)
    return {name: Timing(tuple(values)) for name, values in samples.items()}


def host_cost(contender: Contender, calls: int, rounds: int = 7) -> float:
    """Median main-thread CPU seconds per call (``time.thread_time``), the device synced
    outside each sample: the host cost itself, which other processes' load and PoCL's
    worker threads do not inflate as they do wall time."""
    call, sync = contender
    samples = []
    for _ in range(rounds):
        sync()
        start = time.thread_time()
        for _ in range(calls):
            call()
        samples.append((time.thread_time() - start) / calls)
    sync()
    return statistics.median(samples)


def phase_times(phases: Sequence[Callable[[], object]], rounds: int = 7) -> list[float]:
    """Median wall seconds of each of ``phases``, run in order once a round: how one piece of
    work's time splits, e.g. the host enqueueing it behind a held queue, then the device
    draining it."""
    samples: list[list[float]] = [[] for _ in phases]
    for _ in range(rounds):
        for phase, phase_samples in zip(phases, samples, strict=True):
            start = time.perf_counter()
            phase()
            phase_samples.append(time.perf_counter() - start)
    return [statistics.median(values) for values in samples]


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for PoCL and torch alike (0: both at their defaults, "
                             "every core); see set_threads")


def set_threads(threads: int) -> str:
    """Give PoCL and torch (when importable) the same ``threads`` (0: leave both at their
    defaults) and say what they have. PoCL reads ``POCL_MAX_PTHREAD_COUNT`` once, when its
    platform is first opened, so call this before the first device is made; its count
    cannot change inside a process (a row at 1 thread and one at all cores are two runs)."""
    if threads:
        os.environ["POCL_MAX_PTHREAD_COUNT"] = str(threads)
    described = f"PoCL {os.environ.get('POCL_MAX_PTHREAD_COUNT', 'all cores')}"
    try:
        import torch
    except ImportError:
        return described
    if threads:
        torch.set_num_threads(threads)
    return f"{described}, torch {torch.get_num_threads()}; load average " \
           f"{os.getloadavg()[0]:.1f} (1 minute, at start)"


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="also print every table as one JSON line at the end")


def _text(value: Cell) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


@dataclass
class Table:
    """Rows of named columns, with an ``a / b`` column for each pair in ``ratios``."""

    title: str
    columns: Sequence[str]
    ratios: Sequence[tuple[str, str]] = ()
    rows: dict[str, dict[str, Cell]] = field(default_factory=dict)

    def header(self) -> str:
        names = [*self.columns, *(f"{a} / {b}" for a, b in self.ratios)]
        return (f"\n{self.title}\n| case | " + " | ".join(names) + " |\n|---|"
                + "---:|" * len(names))

    def row(self, case: str, values: Mapping[str, Cell]) -> dict[str, Cell]:
        """Print one row (columns not in ``values``: n/a) and keep it; returns it with
        its ratios."""
        cells: dict[str, Cell] = {c: values.get(c) for c in self.columns}
        for a, b in self.ratios:
            top, bottom = cells[a], cells[b]
            ratio = None
            if isinstance(top, int | float) and isinstance(bottom, int | float) and bottom:
                ratio = top / bottom
            cells[f"{a} / {b}"] = ratio
        self.rows[case] = cells
        shown = [_text(v) for v in list(cells.values())[:len(self.columns)]]
        shown += [f"**{v:.2f}**" if isinstance(v, float) else "n/a"
                  for v in list(cells.values())[len(self.columns):]]
        print(f"| {case} | " + " | ".join(shown) + " |", flush=True)
        return cells


class Report:
    """A bench's output: a provenance line, its tables, and with ``json_line`` one JSON line."""

    def __init__(self, bench: str, device: str, json_line: bool = False, **about: Any) -> None:
        self.json_line = json_line
        self.record: dict[str, Any] = {
            "bench": bench, "device": device,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["python", *sys.argv]), **about, "tables": {},
        }
        print(f"{bench}: device {device}; {self.record['date']}; `{self.record['command']}`")
        for key, value in about.items():
            print(f"{key}: {value}")

    def table(self, title: str, columns: Sequence[str], *,
              ratios: Sequence[tuple[str, str]] = ()) -> Table:
        """A new table (its title says the unit), its header printed now; rows print as
        ``Table.row`` is called."""
        missing = {name for pair in ratios for name in pair} - set(columns)
        if missing:
            raise ValueError(f"ratio of columns {sorted(missing)} not in the table's {columns}")
        table = Table(title, columns, ratios)
        self.record["tables"][title] = table.rows
        print(table.header(), flush=True)
        return table

    def note(self, key: str, value: Any) -> None:
        """A line of text that the JSON line carries too (a proof, a count)."""
        self.record[key] = value
        print(f"{key}: {value}", flush=True)

    def finish(self) -> None:
        if self.json_line:
            print(json.dumps(self.record))
