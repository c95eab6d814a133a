"""Hypothesis profiles: a fixed, derandomized run in CI; random exploration locally.

A red CI from a random example blocks a good submission, so CI (the CI environment
variable set, as every CI service and `.ci/run` do) replays the same examples every
run; locally each run explores new ones. HYPOTHESIS_PROFILE picks one by name.
Recent hypothesis releases load a similar built-in "ci" profile on their own;
registering it here keeps that true for every version `hypothesis>=6` may install.

Under pytest-xdist (`hatch run test` runs `--dist loadgroup`), a module's tests share one
worker, so a module fixture that trains runs once; a module that sets
``SPREAD_OVER_WORKERS = True`` (independent tests, each compiling its own kernels) has its
tests spread over the workers instead, so that it does not hold the run's end on one core.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or
                      ("ci" if os.environ.get("CI") else "dev"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return  # e.g. tools/install_alone.py's venvs: no xdist, and no xdist_group marker
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and not getattr(module, "SPREAD_OVER_WORKERS", False):
            item.add_marker(pytest.mark.xdist_group(module.__name__))
