"""Hypothesis profiles: a fixed, derandomized run in CI; random exploration locally.

A red CI from a random example blocks a good submission, so CI (the CI environment
variable set, as every CI service and `.ci/run` do) replays the same examples every
run; locally each run explores new ones. HYPOTHESIS_PROFILE picks one by name.
Recent hypothesis releases load a similar built-in "ci" profile on their own;
registering it here keeps that true for every version `hypothesis>=6` may install.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or
                      ("ci" if os.environ.get("CI") else "dev"))
