"""SIGKILL `netcl train` again and again, mostly while it saves: its checkpoint always loads.

Each round starts ``netcl train --resume`` on the same checkpoint folder and
kills it with SIGKILL: on even rounds the moment a temporary file shows that
a save is under way, on odd rounds at a random time. After every kill the
checkpoint must load, and training must never go backwards. The kill times
are random; with $CI set they come from a fixed seed, so a failure there can
be replayed. NETCL_KILL_ROUNDS raises the number of rounds for a longer run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netcl.train import load

pytest.importorskip("sklearn")
ROUNDS = int(os.environ.get("NETCL_KILL_ROUNDS", "6"))
TIMEOUT_S = 120.0


def _wait(predicate: object, process: subprocess.Popen[bytes], poll_s: float) -> None:
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"netcl train exited early ({process.returncode}): {error}")
        if time.monotonic() - started > TIMEOUT_S:
            raise AssertionError("netcl train did not reach a save in time")
        time.sleep(poll_s)


def _temporaries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.endswith(".tmp")}


def test_sigkill_at_random_moments_always_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    seed = 0 if os.environ.get("CI") else random.randrange(2**32)
    rng = random.Random(seed)
    checkpoint = tmp_path / "checkpoint.safetensors"
    command = [
        sys.executable, "-m", "netcl.cli.main", "train", "--epochs", "100000", "--hidden", "2048",
        "--batch-size", "1437", "--scheduler", "none", "--checkpoint-dir", str(tmp_path),
        "--resume", "--no-progress",
    ]
    last_epoch, mid_save = 0, 0
    for round_ in range(ROUNDS):
        left_before = _temporaries(tmp_path)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            before = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
            # Both kinds of round first let this process get as far as its own first save.
            _wait(lambda old=left_before: bool(_temporaries(tmp_path) - old), process, 0.0005)
            if round_ % 2:
                _wait(lambda b=before: checkpoint.exists() and checkpoint.stat().st_mtime_ns != b,
                      process, 0.001)
                time.sleep(rng.uniform(0.0, 1.0))
            else:
                time.sleep(rng.uniform(0.0, 0.002))
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
        if _temporaries(tmp_path) - left_before:
            mid_save += 1  # the kill landed between this process's temporary file and its rename
        where = f"(round {round_}, seed {seed})"
        if not checkpoint.exists():
            assert last_epoch == 0, f"the checkpoint vanished after epoch {last_epoch} {where}"
            continue
        state = load(checkpoint)
        assert state["epoch"] >= max(last_epoch, 1), f"training went backwards {where}"
        assert len(state["history"]) == state["epoch"]
        last_epoch = state["epoch"]
    print(f"{ROUNDS} kills, {mid_save} inside a save, {last_epoch} epochs saved (seed {seed})")
    leftovers = {p.name for p in tmp_path.iterdir()} - {checkpoint.name}
    assert all(name.startswith(".checkpoint.safetensors.") for name in leftovers)
    # Each run's first save removed the temporaries of the runs killed before it.
    assert len(leftovers) <= 1, leftovers
    assert last_epoch >= ROUNDS // 2  # the rounds made progress: resume continued each time
    assert mid_save >= 1, f"no kill landed inside a save (seed {seed}): the test tested nothing"
