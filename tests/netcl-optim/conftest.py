"""Fixtures shared by the optimizer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from netcl.optim.functional import kernels


@pytest.fixture(params=["device", "gpu-layout"])
def layout(request: pytest.FixtureRequest) -> Iterator[None]:
    """The device's own kernel layout, then the GPU's forced on it (vec 4, chunk 4)."""
    if request.param == "gpu-layout":
        kernels.layout_override["cpu"] = kernels.LAYOUTS["gpu"]
    try:
        yield
    finally:
        kernels.layout_override.clear()
