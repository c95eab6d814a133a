"""tools/release.py: the version range, the changelog and the sibling requirements it writes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import release  # a script under tools/, not a package

CHANGELOG = """# Changelog — netcl-optim

## Unreleased

- A change.

## 0.1.0 — 2026-01-01

- The first.
"""


@pytest.mark.parametrize(("version", "expected"), [
    ("0.2.0", ">=0.2,<0.3"), ("0.2.3", ">=0.2,<0.3"), ("1.4.0", ">=1.4,<2"),
])
def test_a_release_admits_what_keeps_its_api(version: str, expected: str) -> None:
    assert release.compatible_range(Version(version)) == expected


def test_the_unreleased_section_is_dated_and_a_new_one_opened() -> None:
    dated = release.date_changelog(CHANGELOG, Version("0.2.0"), "2026-11-29")
    assert dated.split("\n")[2:8] == [
        "## Unreleased", "", "## 0.2.0 — 2026-11-29", "", "- A change.", "",
    ]
    assert "## 0.1.0 — 2026-01-01" in dated


@pytest.mark.parametrize("text", [
    CHANGELOG.replace("## Unreleased", "## 0.1.5 — 2026-02-02"),  # no unreleased section
    CHANGELOG.replace("- A change.\n", ""),  # nothing to release
])
def test_a_changelog_with_nothing_to_release_is_refused(text: str) -> None:
    with pytest.raises(release.ReleaseError):
        release.date_changelog(text, Version("0.2.0"), "2026-11-29")


def test_siblings_move_to_the_new_range_with_a_changelog_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packages = Path(release.PACKAGES)
    for name in ("netcl-optim", "netcl", "netcl-device"):
        (tmp_path / name).mkdir()
        for file in ("pyproject.toml", "CHANGELOG.md"):
            shutil.copy(packages / name / file, tmp_path / name / file)
    monkeypatch.setattr(release, "PACKAGES", tmp_path)
    current = release.current_version(packages / "netcl-optim")
    new = Version(f"{current.major}.{current.minor + 1}.0")
    new_range = release.compatible_range(new)
    changed = release.retarget_dependents("netcl-optim", new)
    assert changed == [tmp_path / "netcl" / "pyproject.toml", tmp_path / "netcl" / "CHANGELOG.md"]
    meta = (tmp_path / "netcl" / "pyproject.toml").read_text()
    assert f'"netcl-optim{new_range}"' in meta and '"netcl-device>=0.1,<0.2"' in meta
    log = (tmp_path / "netcl" / "CHANGELOG.md").read_text()
    assert f"- Requires netcl-optim {new.major}.{new.minor} (`netcl-optim{new_range}`)." in log
    # A patch release is already admitted: nothing more to change.
    assert release.retarget_dependents("netcl-optim", Version(f"{new}.1")) == []
