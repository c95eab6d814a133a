"""Device selection, the buffer pool, the kernel cache and queue ordering, on PoCL."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyopencl as cl
import pytest

from netcl.core.device import (
    Device,
    DeviceError,
    DeviceManager,
    KernelBuildError,
    manager,
)

COUNTER_CL = """
__kernel void add_one(__global int *data) { data[get_global_id(0)] += 1; }
__kernel void double_it(__global int *data) { data[get_global_id(0)] *= 2; }
"""


def test_auto_falls_back_to_a_cpu_when_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETCL_DEVICE", raising=False)
    fresh = DeviceManager()
    types = {info.type for info in fresh.devices()}
    expected = "gpu" if "gpu" in types else "cpu"
    assert fresh.default("auto").type == expected


@pytest.mark.smoke
def test_default_returns_the_same_device_each_call() -> None:
    assert manager.default("cpu") is manager.default("cpu")
    first = manager.devices()[0]
    assert manager.default(first.spec) is manager.default(first.spec.replace(":", " : "))


def test_explicit_index_and_env_var_pick_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = manager.default("cpu")
    monkeypatch.setenv("NETCL_DEVICE", cpu.spec)
    assert manager.default("auto") is cpu
    monkeypatch.setenv("NETCL_DEVICE", "cpu")
    assert manager.default("auto") is cpu


def test_listing_names_every_device() -> None:
    listing = manager.devices()
    assert listing, "PoCL provides at least one CPU device"
    cpu = manager.default("cpu")
    entry = next(info for info in listing if info.spec == cpu.spec)
    assert entry.name == cpu.name and entry.global_mem_bytes > 0 and entry.compute_units >= 1
    assert cpu.spec in str(entry)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [("tpu", "unknown device kind 'tpu'"), ("7:0", "no OpenCL device at index '7:0'")],
)
def test_bad_device_spec_names_what_was_asked_and_what_exists(spec: str, fragment: str) -> None:
    with pytest.raises(DeviceError) as error:
        DeviceManager().default(spec)
    assert fragment in str(error.value)
    assert manager.devices()[0].spec in str(error.value)


def test_bad_env_var_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETCL_DEVICE", "fpga")
    with pytest.raises(DeviceError, match="'fpga'"):
        DeviceManager().default("auto")


def test_no_platform_at_all_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_platforms() -> list[cl.Platform]:
        raise cl.LogicError("clGetPlatformIDs failed: PLATFORM_NOT_FOUND_KHR")

    monkeypatch.setattr(cl, "get_platforms", no_platforms)
    with pytest.raises(DeviceError, match="no OpenCL platform was found"):
        DeviceManager().default("auto")


def test_a_foreign_queue_is_adopted_once() -> None:
    cpu = manager.default("cpu")
    assert manager.for_queue(cpu.queue) is cpu
    foreign = cl.CommandQueue(cl.Context([cpu.cl_device]))
    adopted = manager.for_queue(foreign)
    assert adopted.queue is foreign and adopted.context is foreign.context
    assert manager.for_queue(foreign) is adopted


def test_pool_reuses_a_freed_buffer_without_allocating() -> None:
    pool = Device(manager.default("cpu").cl_device, "pool-test").pool
    first = pool.allocate(4000)
    after_first = pool.stats()
    assert after_first.allocations == 1 and after_first.bytes_in_use >= 4000
    del first
    assert pool.stats().bytes_in_use == 0 and pool.stats().bytes_held >= 4000
    second = pool.allocate(3990)  # the same size class
    stats = pool.stats()
    assert stats.allocations == 1 and stats.hits == 1
    assert stats.peak_bytes_in_use == after_first.bytes_in_use
    del second
    pool.free_held()
    assert pool.stats().bytes_held == 0


def test_pool_rejects_negative_sizes() -> None:
    with pytest.raises(ValueError, match="nbytes must be >= 0, got -1"):
        manager.default("cpu").pool.allocate(-1)


@pytest.mark.smoke
def test_kernel_cache_builds_once_and_returns_the_same_kernel(tmp_path: Path) -> None:
    device = Device(manager.default("cpu").cl_device, "cache-test")
    source = tmp_path / "counter.cl"
    source.write_text(COUNTER_CL)
    first = device.kernels.kernel(source, "add_one")
    assert device.kernels.kernel(source, "add_one") is first
    assert len(device.kernels) == 1
    # The other kernel of the same program comes from the same build.
    device.kernels.kernel(source, "double_it")
    assert len(device.kernels) == 1
    # New defines are a new program.
    device.kernels.kernel(source, "add_one", {"UNUSED": 1})
    assert len(device.kernels) == 2


class _Scale(NamedTuple):
    """A Variant: a hashable build description that gives its defines."""

    factor: int

    def defines(self) -> dict[str, int]:
        return {"FACTOR": self.factor}


SCALE_CL = "__kernel void scale(__global int *d) { d[get_global_id(0)] *= FACTOR; }\n"


def test_kernel_cache_keys_variants_and_concatenated_sources(tmp_path: Path) -> None:
    device = Device(manager.default("cpu").cl_device, "variant-test")
    prelude, body = tmp_path / "prelude.cl", tmp_path / "scale.cl"
    prelude.write_text("#define TWICE(x) (2 * (x))\n")
    body.write_text(SCALE_CL.replace("FACTOR", "TWICE(FACTOR)"))
    three = device.kernels.kernel((prelude, body), "scale", _Scale(3))
    assert device.kernels.kernel((prelude, body), "scale", _Scale(3)) is three
    # A mapping with the variant's defines is the same source: no second build.
    device.kernels.kernel((prelude, body), "scale", {"FACTOR": 3})
    assert len(device.kernels) == 1
    buffer = device.pool.allocate(4 * 4)
    cl.enqueue_fill_buffer(device.queue, buffer, np.int32(1), 0, 16)
    three(device.queue, (4,), None, buffer)
    device.kernels.kernel((prelude, body), "scale", _Scale(5))(device.queue, (4,), None, buffer)
    host = np.empty(4, np.int32)
    cl.enqueue_copy(device.queue, host, buffer)
    assert (host == 1 * 6 * 10).all() and len(device.kernels) == 2


def test_kernel_cache_plans_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from netcl.core.device import kernels

    monkeypatch.setattr(kernels, "MAX_PLANS", 4)
    cache = Device(manager.default("cpu").cl_device, "plans-test").kernels
    for key in range(5):
        assert cache.remember(key, str(key)) == str(key)
    # The fifth plan dropped the oldest half; the newest are kept.
    assert sorted(cache.plans) == [2, 3, 4]


def test_build_failure_carries_the_log_and_file_name(tmp_path: Path) -> None:
    device = manager.default("cpu")
    broken = tmp_path / "broken.cl"
    broken.write_text("__kernel void k(__global float *x) { x[0] = undefined_name; }\n")
    with pytest.raises(KernelBuildError) as error:
        device.kernels.kernel(broken, "k")
    message = str(error.value)
    assert "broken.cl" in message and "undefined_name" in message


def test_missing_kernel_name_lists_the_kernels(tmp_path: Path) -> None:
    source = tmp_path / "counter.cl"
    source.write_text(COUNTER_CL)
    with pytest.raises(KernelBuildError, match=r"no kernel named 'nope'.*add_one"):
        manager.default("cpu").kernels.kernel(source, "nope")


@pytest.mark.smoke
def test_in_order_queue_runs_kernels_in_enqueue_order(tmp_path: Path) -> None:
    device = manager.default("cpu")
    source = tmp_path / "counter.cl"
    source.write_text(COUNTER_CL)
    add_one = device.kernels.kernel(source, "add_one")
    double_it = device.kernels.kernel(source, "double_it")
    n = 1 << 16
    buffer = device.pool.allocate(4 * n)
    cl.enqueue_fill_buffer(device.queue, buffer, np.int32(0), 0, 4 * n)
    # ((0 + 1) * 2 + 1) * 2 = 6 only if each kernel sees the previous one's writes.
    for kernel in (add_one, double_it, add_one, double_it):
        kernel(device.queue, (n,), None, buffer)
    host = np.empty(n, np.int32)
    cl.enqueue_copy(device.queue, host, buffer)
    assert (host == 6).all()


def test_profiling_queue_times_events() -> None:
    device = manager.default("cpu")
    queue = device.profiling_queue()
    assert queue is device.profiling_queue()
    buffer = device.pool.allocate(1 << 20)
    event = cl.enqueue_fill_buffer(queue, buffer, np.float32(1), 0, 1 << 20)
    event.wait()
    assert event.profile.end >= event.profile.start > 0
