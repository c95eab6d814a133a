"""Running a script under ``mpiexec -n K`` from a test, with a deadline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# Long enough for every rank's first PoCL kernel builds on a 2-core machine; a hang hits it.
DEADLINE_S = 180


def mpiexec() -> str:
    """The mpiexec beside this Python (the mpich wheel's), else the first on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        raise RuntimeError("no mpiexec: pip install netcl-distributed brings the mpich wheel's")
    return found


def run(ranks: int, script: Path | str, *args: str, deadline: float = DEADLINE_S
        ) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``script`` on ``ranks`` ranks (0: as a plain process); the result and its seconds."""
    command = [sys.executable, str(script), *args]
    if ranks:
        command = [mpiexec(), "-n", str(ranks), *command]
    started = time.perf_counter()
    # netcl.distributed.init() picks each rank's PoCL thread count (ddp_checks.py checks it).
    env = {k: v for k, v in os.environ.items() if k != "POCL_MAX_PTHREAD_COUNT"}
    # No standard input: mpiexec forwards its stdin to rank 0, and CI may have none open.
    result = subprocess.run(command, capture_output=True, text=True, timeout=deadline,
                            cwd=ROOT, check=False, stdin=subprocess.DEVNULL, env=env)
    return result, time.perf_counter() - started


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON summary on the last line of stdout; AssertionError with the output otherwise."""
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary
