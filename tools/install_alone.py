"""Build every distribution's wheel, then install each one alone and run its own tests.

    python tools/install_alone.py                  # every package under packages/
    python tools/install_alone.py netcl-optim      # just these

For each distribution: a fresh virtual environment (no site packages, no
PYTHONPATH) gets its wheel and only what the wheel declares (netcl siblings
from the wheels just built, through ``--find-links``; the rest from the
package index), plus the test tools its tests import (versions from
hatch.toml). Then it checks that the netcl distributions installed are
exactly the declared ones (and those they declare), that the package imports
from the environment, and runs there the ``>>>`` examples of its sources where
it has any, the scripts under ``examples/<name>/``, and the smoke tests of
``tests/<name>`` (those marked ``@pytest.mark.smoke``; every test module is still
collected, so each one's imports resolve against the wheel alone). The full suite
runs once, from the workspace (``hatch run test``); running it again per wheel
would double CI's time and prove little more. An undeclared dependency fails the
import or the tests. Prints the seconds each step took.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
import venv
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ROOT / "packages"
WHEELS = ROOT / "dist" / "wheels"
# The test tools a test directory may import (import name: distribution), pinned as in hatch.toml.
TEST_TOOLS = {"pytest": "pytest", "hypothesis": "hypothesis", "torch": "torch",
              "sklearn": "scikit-learn"}


def project(name: str) -> dict[str, Any]:
    with (PACKAGES / name / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def netcl_requirements(name: str) -> set[str]:
    """The netcl distributions ``name`` needs, directly or through another one."""
    needed: set[str] = set()
    for spec in project(name)["project"].get("dependencies", []):
        dependency = canonicalize_name(Requirement(spec).name)
        if (PACKAGES / dependency).is_dir() and dependency not in needed:
            needed |= {dependency, *netcl_requirements(dependency)}
    return needed


def modules_of(name: str) -> list[str]:
    """The packages ``name`` installs (``netcl.optim``; ``netcl.train``, ``netcl.data`` and
    ``netcl.cli`` for the meta-package): its source tree's folders with an __init__.py."""
    namespace = PACKAGES / name / "src" / "netcl"
    folders = [*namespace.glob("*/__init__.py"), *namespace.glob("core/*/__init__.py")]
    return sorted(".".join(f.parent.relative_to(namespace.parent).parts) for f in folders)


def test_tools(tests: Path) -> list[str]:
    """hatch.toml's pins of the tools that ``tests``, tests/conftest.py and the scripts the
    tests run import."""
    with (ROOT / "hatch.toml").open("rb") as f:
        pins = {canonicalize_name(Requirement(spec).name): spec
                for spec in tomllib.load(f)["envs"]["default"]["dependencies"]}
    files = [ROOT / "tests" / "conftest.py", *tests.rglob("*.py")]
    text = "\n".join(p.read_text() for p in files if p.exists())
    # Scripts under tools/ that the tests run (``ROOT / "tools" / "ddp_digits.py"``) count too.
    for script in re.findall(r'"tools"\s*/\s*"(\w+\.py)"', text):
        text += (ROOT / "tools" / script).read_text()
    return [pins.get(dist, dist) for module, dist in TEST_TOOLS.items()
            if re.search(rf'^\s*(import|from) {module}\b|importorskip\("{module}\b', text,
                         re.MULTILINE)]


# Run by the environment's Python: the netcl distributions installed must be exactly the
# expected ones (argv[2], comma-separated), and each package (argv[3:]) must import from the
# environment; prints the folder of each.
PROBE = """
import importlib, importlib.metadata, os, sys
expected, modules = sys.argv[1].split(","), sys.argv[2:]
found = sorted(d.metadata["Name"] for d in importlib.metadata.distributions()
               if d.metadata["Name"].startswith("netcl"))
assert found == expected, f"installed netcl distributions {found}, declared {expected}"
for module in modules:
    imported = importlib.import_module(module)
    assert imported.__file__.startswith(sys.prefix), f"{module} from {imported.__file__}"
    print(os.path.dirname(imported.__file__))
"""


def run(command: list[str], **kwargs: Any) -> None:
    print("  $", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def build_wheels(names: list[str]) -> dict[str, Path]:
    WHEELS.mkdir(parents=True, exist_ok=True)
    for old in WHEELS.glob("*.whl"):
        old.unlink()
    for name in names:
        run(["hatch", "build", "-t", "wheel", str(WHEELS)], cwd=PACKAGES / name)
    wheels = {}
    for wheel in WHEELS.glob("*.whl"):
        wheels[canonicalize_name(wheel.name.split("-")[0].replace("_", "-"))] = wheel
    return wheels


def check_alone(name: str, wheel: Path, scratch: Path) -> dict[str, float]:
    """Install ``wheel`` alone into a new environment under ``scratch`` and test it there."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    env_dir = scratch / name
    venv.create(env_dir, with_pip=True, clear=True)
    python = str(env_dir / "bin" / "python")
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    tests = ROOT / "tests" / name
    # --no-compile: byte-compiling torch's thousands of modules in every venv is most of an
    # install's time, and these environments live for one run.
    run([python, "-m", "pip", "install", "-q", "--no-compile", "--find-links", str(WHEELS),
         str(wheel), *test_tools(tests)], env=environ)
    seconds["install"] = time.perf_counter() - started

    started = time.perf_counter()
    expected = sorted({canonicalize_name(name), *netcl_requirements(name)})
    modules = modules_of(name)
    folders = subprocess.run(
        [python, "-c", PROBE, ",".join(expected), *modules], env=environ, cwd=scratch,
        check=True, capture_output=True, text=True,
    ).stdout.split()
    print(f"  installed {', '.join(expected)}; {', '.join(modules)} import from {scratch}")

    run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "smoke", str(tests)],
        env=environ, cwd=ROOT)
    # The >>> examples of the installed sources (those that have any).
    documented = [f for f in folders if any(">>>" in p.read_text() for p in Path(f).rglob("*.py"))]
    if documented:
        run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(ROOT / "pytest.ini"),
             "--doctest-modules", "-o", "consider_namespace_packages=true", *documented],
            env=environ, cwd=ROOT)
    for example in sorted((ROOT / "examples" / name).glob("*.py")):
        run([python, str(example)], env=environ, cwd=scratch)
    seconds["tests"] = time.perf_counter() - started
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="distributions to check (default: every one)")
    args = parser.parse_args()
    every = sorted(p.name for p in PACKAGES.iterdir() if (p / "pyproject.toml").exists())
    names = args.names or every
    started = time.perf_counter()
    wheels = build_wheels(every)  # every one: a package's siblings come from these
    print(f"built {len(wheels)} wheels in {time.perf_counter() - started:.0f} s", flush=True)
    timings: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="netcl-alone-") as scratch:
        for name in names:
            print(f"== {name}: install alone, import, doctests, examples, smoke tests", flush=True)
            timings[name] = check_alone(name, wheels[canonicalize_name(name)], Path(scratch))
    for name, seconds in timings.items():
        print(f"{name:20s} install {seconds['install']:6.0f} s   tests {seconds['tests']:6.0f} s")
    print(f"every distribution installed alone and passed its smoke tests "
          f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
