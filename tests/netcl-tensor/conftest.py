"""Fixtures shared by the tensor-layer tests: the device, a seeded generator, a recorder."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyopencl as cl
import pytest

from netcl.core.device import Device, manager
from netcl.core.tensor import Tensor, recorder


@pytest.fixture(scope="session")
def device() -> Device:
    return manager.default("auto")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@dataclass
class Call:
    op: str
    inputs: list[Tensor]
    output: Tensor
    saved: dict[str, Any]


@dataclass
class RecordLog:
    """A recorder that keeps every call, for checking what ops tell autograd."""

    calls: list[Call] = field(default_factory=list)

    def record(
        self, op: str, inputs: Sequence[Tensor], output: Tensor, saved: Mapping[str, Any]
    ) -> None:
        self.calls.append(Call(op, list(inputs), output, dict(saved)))

    @property
    def ops(self) -> list[str]:
        return [c.op for c in self.calls]


@pytest.fixture
def tape() -> Iterator[RecordLog]:
    log = RecordLog()
    with recorder.recording(log):
        yield log


@dataclass
class LaunchLog:
    """An observer that keeps each launch's kernel name and arguments."""

    launches: list[tuple[str, tuple[int, ...], list[Any]]] = field(default_factory=list)

    def launched(
        self, device: Device, kernel: cl.Kernel, global_size: tuple[int, ...],
        local_size: tuple[int, ...] | None, args: Sequence[Any], about: object,
    ) -> None:
        self.launches.append((kernel.function_name, global_size, list(args)))

    # Host reads, uploads and effects are not launches; this log keeps none.
    def host_read(self, what: str) -> None: ...

    def host_upload(self, what: str) -> None: ...

    def host_effect(self, effect: Callable[[], None]) -> None: ...

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.launches]
