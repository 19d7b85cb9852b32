"""What a user installs: the wheel's files and metadata, the locked test environment, the floors.

The lock and the floors are checked as files (no network): every test
dependency pinned once, inside the ranges pyproject.toml declares; the floors
exactly the ranges' lower bounds.  .ci/run installs from them and runs the
tests on each (README, "Try it").
"""

from __future__ import annotations

import email
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

PROJECT = Path(__file__).resolve().parent.parent
README = PROJECT / "README.md"
PYPROJECT = tomllib.loads((PROJECT / "pyproject.toml").read_text())
LOCK = PROJECT / "requirements" / "test.lock"
FLOORS = PROJECT / "requirements" / "floors.txt"
FLOORS_LOCK = PROJECT / "requirements" / "floors.lock"
RUNTIME = [Requirement(line) for line in PYPROJECT["project"]["dependencies"]]
EXTRAS = PYPROJECT["project"]["optional-dependencies"]


def _pins(path: Path) -> dict[str, list[tuple[Version, Marker | None]]]:
    """Each package a constraints file pins, with each version and the marker it applies under."""
    out: dict[str, list[tuple[Version, Marker | None]]] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        [spec] = req.specifier
        assert spec.operator == "==", line
        out.setdefault(req.name.lower(), []).append((Version(spec.version), req.marker))
    return out


def _pin_here(pins, name: str) -> Version:
    """The version ``pins`` gives ``name`` on this interpreter (exactly one applies)."""
    [version] = [v for v, marker in pins[name.lower()] if marker is None or marker.evaluate()]
    return version


def _readme_block(after: str) -> str:
    """The first ```sh block of the README after the line that contains ``after``."""
    text = README.read_text()
    start = text.index(after)
    return re.search(r"```sh\n(.*?)\n```", text[start:], re.DOTALL).group(1)


class TestPackaging:
    def test_license_file_matches_the_metadata(self):
        """A LICENSE file is there, and it is the MIT licence the metadata declares."""
        import tomllib

        meta = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
        assert meta["license"] == "MIT"
        assert (PROJECT / "LICENSE").read_text().startswith("MIT License\n")

    def test_the_version_has_one_source(self):
        """pyproject.toml takes the version from migrate.__version__, and the installed metadata agrees."""
        import importlib.metadata
        import tomllib

        import migrate

        meta = tomllib.loads((PROJECT / "pyproject.toml").read_text())
        assert "version" not in meta["project"] and "version" in meta["project"]["dynamic"]
        assert meta["tool"]["hatch"]["version"]["path"] == "migrate/__init__.py"
        assert importlib.metadata.version("expressway-migrate") == migrate.__version__

    def test_the_pytest_extra_brings_pytest(self):
        """The plugin's users install the pytest extra, and it requires pytest."""
        import importlib.metadata

        requires = importlib.metadata.requires("expressway-migrate") or []
        assert any(r.startswith("pytest") and 'extra == "pytest"' in r.replace("'", '"') for r in requires), requires

    def test_the_changelog_has_dated_releases_and_link_references(self):
        """Keep a Changelog: [Unreleased] first, then 0.1.0 with its date, and a link reference for each."""
        text = (PROJECT / "CHANGELOG.md").read_text()
        headings = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d\d-\d\d))?$", text, re.MULTILINE)
        assert headings[0] == ("Unreleased", "") and ("0.1.0", "2026-11-27") in headings
        for name, _ in headings:
            assert re.search(rf"^\[{re.escape(name)}\]: \S+$", text, re.MULTILINE), name


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel the build backend makes of this tree, as a user's pip would install it."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "--target", "wheel", "--directory", str(out)],
        cwd=PROJECT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    [path] = out.glob("*.whl")
    return zipfile.ZipFile(path)


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


class TestWheel:
    def test_typed_package(self, wheel):
        """The wheel carries migrate/py.typed (PEP 561) and says Typing :: Typed."""
        assert "migrate/py.typed" in wheel.namelist()
        assert "Typing :: Typed" in _metadata(wheel).get_all("Classifier")

    def test_holds_the_package_and_the_samples_only(self, wheel):
        """Every file is the package's (the samples under migrate/_sample_fs) or its metadata: no tests, no locks."""
        names = wheel.namelist()
        assert all(n.startswith(("migrate/", "expressway_migrate-")) for n in names), names
        assert any(n.startswith("migrate/_sample_fs/core/") for n in names)
        assert not any("/tests/" in n or n.endswith(".lock") for n in names)

    def test_index_page_metadata(self, wheel):
        """Classifiers, keywords and a summary for an index page; the README as its description, with no link an index cannot follow."""
        meta = _metadata(wheel)
        classifiers = meta.get_all("Classifier")
        assert {"Programming Language :: Python :: 3.11", "Intended Audience :: System Administrators"} <= set(classifiers)
        assert "expressway" in meta["Keywords"] and "x509" in meta["Keywords"]
        assert meta["Summary"].startswith("Migrate a Cisco Expressway node's certificate store")
        description = meta.get_payload()
        assert description.startswith("# expressway-migrate")
        links = re.findall(r"\]\(([^)]*)\)", description)
        assert all(link.startswith(("https://", "#")) for link in links), links

    def test_requires_what_pyproject_declares(self, wheel):
        """The wheel's runtime requirements are pyproject.toml's ranges, not pins."""
        requires = [Requirement(r) for r in _metadata(wheel).get_all("Requires-Dist")]
        runtime = {str(r) for r in requires if r.marker is None}
        assert runtime == {str(r) for r in RUNTIME}
        assert all(s.operator == ">=" for r in RUNTIME for s in r.specifier)


class TestLock:
    def test_every_test_dependency_is_pinned_inside_its_range(self):
        """test.lock pins each runtime and test requirement once for this Python, at a version its range admits."""
        pins = _pins(LOCK)
        for req in RUNTIME + [Requirement(r) for r in EXTRAS["test"] + EXTRAS["pytest"]]:
            assert req.specifier.contains(_pin_here(pins, req.name)), req

    def test_indirect_dependencies_are_pinned_too(self):
        """The lock is the whole environment: what cryptography, ansible-core and pytest pull in is pinned as well."""
        pins = _pins(LOCK)
        assert {"cffi", "jinja2", "pyyaml", "pluggy", "iniconfig", "packaging"} <= set(pins)

    def test_readme_and_ci_install_from_it(self):
        """The README's test command installs through the lock, and .ci/run's locked job is that command, verbatim."""
        command = _readme_block("installs the tool with its test dependencies")
        assert "PIP_CONSTRAINT=requirements/test.lock .venv/bin/pip install -e '.[test]'" in command
        assert f'\njob locked "{command}"\n' in (PROJECT / ".ci" / "run").read_text()

    def test_readme_gives_the_commands_that_make_the_locks(self):
        """The command written at the top of each lock (how it was made) is in the README, word for word."""
        readme = README.read_text()
        for lock in (LOCK, FLOORS_LOCK):
            made_by = lock.read_text().splitlines()[1].removeprefix("#").strip()
            assert made_by.startswith("uv pip compile pyproject.toml") and made_by in readme, made_by


class TestFloors:
    def test_floors_are_the_declared_lower_bounds(self):
        """floors.txt pins each runtime dependency (and the pytest extra's pytest) at exactly its declared floor."""
        pins = _pins(FLOORS)
        for req in RUNTIME + [Requirement(r) for r in EXTRAS["pytest"]]:
            [spec] = req.specifier
            assert pins[req.name.lower()] == [(Version(spec.version), None)], req
        assert len(pins) == len(RUNTIME) + len(EXTRAS["pytest"])

    def test_floors_lock_holds_the_floors(self):
        """floors.lock, which the floors job installs, resolves every floor to itself."""
        floors, locked = _pins(FLOORS), _pins(FLOORS_LOCK)
        for name, [(version, _)] in floors.items():
            assert _pin_here(locked, name) == version, name
