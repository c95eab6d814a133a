"""Each distribution's tests import only the netcl layers it declares, and mark smoke tests.

tools/install_alone.py collects ``tests/<name>`` and runs its smoke tests with only
``<name>``'s declared dependencies installed, so a test there that needs a layer above (an nn test
that steps an optimizer) fails in CI's install-alone step; this finds it in
the ordinary run, with where it should go. Tests across layers live in
``tests/netcl/``, the meta-package's, which has them all.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import install_alone  # a script under tools/, not a package

TESTS = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = sorted(p.name for p in install_alone.PACKAGES.iterdir()
                       if (TESTS / p.name).is_dir())


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_a_distributions_tests_import_only_what_it_declares(name: str) -> None:
    allowed = [module for dist in {name, *install_alone.netcl_requirements(name)}
               for module in install_alone.modules_of(dist)]
    outside = []
    for path in sorted((TESTS / name).rglob("*.py")):
        for module in set(re.findall(r"^\s*(?:import|from) (netcl(?:\.core)?\.\w+)",
                                     path.read_text(), re.MULTILINE)):
            if not any(module == a or module.startswith(f"{a}.") for a in allowed):
                outside.append(f"{path.relative_to(TESTS)} imports {module}")
    assert not outside, (
        f"{name} does not declare these layers, so its tests run without them: {outside}; "
        "a test that needs several layers belongs in tests/netcl/"
    )


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_a_distribution_has_smoke_tests_for_its_wheel_alone(name: str) -> None:
    # install_alone.py runs only `-m smoke` against each wheel; with none, pytest collects
    # nothing there and the wheel's own code goes untested alone.
    marked = [path.name for path in sorted((TESTS / name).rglob("test_*.py"))
              if "@pytest.mark.smoke" in path.read_text()]
    assert marked, f"tests/{name} has no @pytest.mark.smoke test for tools/install_alone.py"
