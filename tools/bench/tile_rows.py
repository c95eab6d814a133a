"""The tile rows file: matmul_tune.py's winners as ``matmul_tiles.MEASURED`` rows in JSON,
which train_step.py and kernel_profile.py (``--tiles``) put in front of MEASURED for a
run."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from netcl.core.device import Device
from netcl.core.tensor.ops import matmul_tiles
from netcl.core.tensor.ops.matmul_tiles import TileConfig


def write_rows(path: Path, key: str, rows: matmul_tiles.Measured) -> None:
    """``rows`` as JSON: {"device": the MEASURED key, "rows": [[layout, M, N, K, tile's
    fields], ...]}."""
    listed = [[layout, m, n, k, dataclasses.asdict(tile)] for layout, m, n, k, tile in rows]
    path.write_text(json.dumps({"device": key, "rows": listed}, indent=1) + "\n")


def read_rows(path: Path) -> tuple[str, matmul_tiles.Measured]:
    """What ``write_rows`` wrote; a malformed file raises ValueError naming the row."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("device"), str) or not isinstance(
            data.get("rows"), list):
        raise ValueError(f"{path}: expected {{'device': str, 'rows': [...]}} as --rows-out "
                         "writes it")
    rows = []
    for i, row in enumerate(data["rows"]):
        try:
            layout, m, n, k, fields = row
            rows.append((str(layout), int(m), int(n), int(k), TileConfig(**fields)))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: row {i} {row!r} is not [layout, M, N, K, tile fields]: "
                             f"{error}") from error
    return data["device"], tuple(rows)


def measured_key(device_name: str) -> str:
    """The MEASURED key this device reads (its name when it has none)."""
    return next((key for key in matmul_tiles.MEASURED if key in device_name), device_name)


class TileRows:
    """Rows put in front of ``MEASURED[key]`` while ``applied``: choose_tile's nearest
    match then finds them first. Matmul keeps the plans it made (tiles included) per
    device; inside, the device holds a plan cache of this object's own, so neither
    side's plans serve the other."""

    def __init__(self, key: str, rows: matmul_tiles.Measured) -> None:
        self.key, self.rows = key, rows
        self._plans: dict[Any, Any] = {}

    @classmethod
    def read(cls, path: Path) -> TileRows:
        return cls(*read_rows(path))

    @contextmanager
    def applied(self, device: Device) -> Iterator[None]:
        table = matmul_tiles.MEASURED
        before = table.get(self.key)
        plans = device.kernels.plans
        table[self.key] = self.rows + (before or ())
        device.kernels.plans = self._plans
        try:
            yield
        finally:
            device.kernels.plans = plans
            if before is None:
                del table[self.key]
            else:
                table[self.key] = before

    def wrap(self, step: Callable[[], None], device: Device) -> Callable[[], None]:
        def applied_step() -> None:
            with self.applied(device):
                step()
        return applied_step
