"""Release one distribution of the monorepo on its own: version, changelog, build, check, tag.

    python tools/release.py netcl-optim 0.2.0            # from the repository root
    python tools/release.py netcl-optim 0.2.0 --dry-run  # build and check, change nothing

For ``packages/<name>`` it:

1. refuses a dirty work tree, an existing tag ``<name>-v<version>`` and a
   version not above the current one;
2. writes the version (the file ``[tool.hatch.version] path`` names, or
   ``project.version`` of a package without one);
3. dates the changelog's top section (its heading ends in "unreleased") as
   ``## <version> — <date>`` and opens a new ``## Unreleased`` above it;
4. moves every sibling's requirement on this package to the new release's
   range (``>=0.2,<0.3``: under 1.0 a minor release may break), with a line
   in that sibling's changelog;
5. builds the sdist and the wheel with ``hatch build`` into ``dist/<name>/``;
6. checks both: core metadata valid (``packaging.metadata``), name, version
   and requirements as the pyproject says, the wheel holding every file of
   the package's source tree (kernels and ``py.typed`` included) and no
   ``netcl/__init__.py`` (the namespace stays open to the other packages);
7. commits and tags ``<name>-v<version>``.

A failure after step 2 puts every file back as it was. Nothing is pushed or
uploaded.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ROOT / "packages"
UNRELEASED = "## Unreleased"


class ReleaseError(Exception):
    """Why a release cannot go ahead; nothing is changed when it is raised."""


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def pyproject(package: Path) -> dict[str, Any]:
    with (package / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


# -- the version -----------------------------------------------------------------------------
def version_file(package: Path) -> Path:
    """The file that holds the package's version: ``_version.py``, or its pyproject."""
    path = pyproject(package).get("tool", {}).get("hatch", {}).get("version", {}).get("path")
    return package / path if path else package / "pyproject.toml"


_VERSION_LINE = re.compile(r'^(__version__|version) = "([^"]+)"$', re.MULTILINE)


def current_version(package: Path) -> Version:
    match = _VERSION_LINE.search(version_file(package).read_text())
    if match is None:
        raise ReleaseError(f"{version_file(package)}: no version line")
    return Version(match.group(2))


def write_version(package: Path, version: Version) -> None:
    path = version_file(package)
    text = path.read_text()
    path.write_text(_VERSION_LINE.sub(lambda m: f'{m.group(1)} = "{version}"', text, count=1))


def compatible_range(version: Version) -> str:
    """The releases that keep this one's API: the same minor under 1.0, the same major after."""
    if version.major == 0:
        return f">={version.major}.{version.minor},<{version.major}.{version.minor + 1}"
    return f">={version.major}.{version.minor},<{version.major + 1}"


# -- the changelog ---------------------------------------------------------------------------
def date_changelog(text: str, version: Version, date: str) -> str:
    """``text`` with its top section dated as ``version`` and a new Unreleased one above it."""
    lines = text.split("\n")
    top = next((i for i, line in enumerate(lines) if line.startswith("## ")), None)
    if top is None or not lines[top].lower().endswith("unreleased"):
        raise ReleaseError(
            "the changelog's top section must be the unreleased one (a '## ' heading "
            f"ending in 'unreleased'); found {lines[top] if top is not None else 'none'!r}"
        )
    following = next((i for i in range(top + 1, len(lines)) if lines[i].startswith("## ")),
                     len(lines))
    if not any(line.strip() for line in lines[top + 1:following]):
        raise ReleaseError(f"the changelog's {lines[top]!r} section lists no change")
    lines[top] = f"## {version} — {date}"
    return "\n".join([*lines[:top], UNRELEASED, "", *lines[top:]])


def note_in_changelog(package: Path, note: str) -> None:
    """Add ``note`` as an entry of the package's unreleased section (opening one if needed)."""
    path = package / "CHANGELOG.md"
    lines = path.read_text().split("\n")
    top = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
    if top == len(lines) or not lines[top].lower().endswith("unreleased"):
        lines[top:top] = [UNRELEASED, "", ""]
    lines.insert(top + 2, f"- {note}")
    path.write_text("\n".join(lines))


# -- siblings ----------------------------------------------------------------------------------
def retarget_dependents(name: str, version: Version) -> list[Path]:
    """Point every sibling's requirement on ``name`` at ``version``'s range where it does not
    admit ``version`` already; returns the files changed."""
    new_range = compatible_range(version)
    changed: list[Path] = []
    for other in sorted(PACKAGES.iterdir()):
        path = other / "pyproject.toml"
        if other.name == name or not path.exists():
            continue
        text = path.read_text()
        for spec in pyproject(other)["project"].get("dependencies", []):
            requirement = Requirement(spec)
            if canonicalize_name(requirement.name) != canonicalize_name(name):
                continue
            if requirement.specifier.contains(version, prereleases=True):
                continue
            text = text.replace(f'"{spec}"', f'"{name}{new_range}"')
            path.write_text(text)
            note_in_changelog(other, f"Requires {name} {version.major}.{version.minor} "
                                     f"(`{name}{new_range}`).")
            changed += [path, other / "CHANGELOG.md"]
    return changed


# -- build and check ---------------------------------------------------------------------------
def build(package: Path, out: Path) -> tuple[Path, Path]:
    """The sdist and the wheel of ``package``, built by hatch into ``out``."""
    for old in out.glob("*"):
        old.unlink()
    subprocess.run(["hatch", "build", "-t", "sdist", "-t", "wheel", str(out)], cwd=package,
                   check=True)
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise ReleaseError(f"hatch build left {sdists + wheels} in {out}; expected one of each")
    return sdists[0], wheels[0]


def check_metadata(text: str, package: Path, version: Version, where: str) -> None:
    """Core metadata ``text`` is valid and says what the pyproject says."""
    try:
        metadata = Metadata.from_email(text, validate=True)
    except Exception as error:  # packaging raises an ExceptionGroup of every problem
        raise ReleaseError(f"{where}: invalid metadata: {error!r}") from error
    project = pyproject(package)["project"]
    if canonicalize_name(metadata.name) != canonicalize_name(project["name"]):
        raise ReleaseError(f"{where}: name {metadata.name!r}, expected {project['name']!r}")
    if metadata.version != version:
        raise ReleaseError(f"{where}: version {metadata.version}, expected {version}")
    declared = sorted(str(Requirement(spec)) for spec in project.get("dependencies", []))
    found = sorted(str(r) for r in metadata.requires_dist or [])
    if found != declared:
        raise ReleaseError(f"{where}: requires {found}, the pyproject declares {declared}")


def check_wheel(wheel: Path, package: Path, version: Version) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        check_metadata(archive.read(metadata).decode(), package, version, wheel.name)
    if "netcl/__init__.py" in names or "netcl/core/__init__.py" in names:
        raise ReleaseError(f"{wheel.name} ships a namespace package's __init__.py")
    source = package / "src"
    expected = {
        path.relative_to(source).as_posix() for path in source.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    missing = sorted(expected - names)
    if missing:
        raise ReleaseError(f"{wheel.name} lacks {missing}")


def check_sdist(sdist: Path, package: Path, version: Version) -> None:
    with tarfile.open(sdist) as archive:
        (info,) = [m for m in archive.getmembers() if m.name.count("/") == 1
                   and m.name.endswith("/PKG-INFO")]
        member = archive.extractfile(info)
        assert member is not None
        check_metadata(member.read().decode(), package, version, sdist.name)


# -- the release -------------------------------------------------------------------------------
def release(name: str, version: Version, date: str, dry_run: bool) -> None:
    package = PACKAGES / name
    if not (package / "pyproject.toml").exists():
        raise ReleaseError(f"no package {name!r} under {PACKAGES}")
    tag = f"{name}-v{version}"
    if git("tag", "--list", tag):
        raise ReleaseError(f"tag {tag} exists already")
    if git("status", "--porcelain", "--untracked-files=no"):
        raise ReleaseError("the work tree has uncommitted changes; commit or stash them first")
    current = current_version(package)
    if version <= current:
        raise ReleaseError(f"{name} is at {current}; a release must go above it, not {version}")

    changelog = package / "CHANGELOG.md"
    originals = {path: path.read_text() for path in PACKAGES.glob("*/*.toml")}
    originals |= {path: path.read_text() for path in PACKAGES.glob("*/CHANGELOG.md")}
    originals[version_file(package)] = version_file(package).read_text()
    try:
        write_version(package, version)
        changelog.write_text(date_changelog(changelog.read_text(), version, date))
        changed = [version_file(package), changelog, *retarget_dependents(name, version)]
        sdist, wheel = build(package, ROOT / "dist" / name)
        check_sdist(sdist, package, version)
        check_wheel(wheel, package, version)
        print(f"built and checked {sdist.name} and {wheel.name} in {wheel.parent}")
        if dry_run:
            raise ReleaseError("--dry-run: everything checked; no file changed, nothing tagged")
        git("add", *(str(path) for path in changed))
        git("commit", "-q", "-m", f"{name} {version}")
        git("tag", "-a", tag, "-m", f"{name} {version}")
    except BaseException:
        for path, text in originals.items():
            if path.read_text() != text:
                path.write_text(text)
        raise
    print(f"committed {git('rev-parse', '--short', 'HEAD')} and tagged {tag}")
    for path in changed:
        print(f"  {path.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", help="a distribution under packages/, e.g. netcl-optim")
    parser.add_argument("version", type=Version, help="the new version, e.g. 0.2.0")
    parser.add_argument("--date", default=datetime.datetime.now(datetime.UTC).date().isoformat(),
                        help="the release date for the changelog (default: today, UTC)")
    parser.add_argument("--dry-run", action="store_true",
                        help="build and check as for a release, then put everything back")
    args = parser.parse_args()
    try:
        release(args.package, args.version, args.date, args.dry_run)
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
