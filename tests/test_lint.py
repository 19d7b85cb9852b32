"""The house rules run with the tests, so CI enforces them: ruff's rule set and mypy (strict on the pure layers).

Both are configured in ``pyproject.toml``; the import contracts of the layers
are ``tests/test_layers.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *argv], cwd=PROJECT, capture_output=True, text=True, timeout=600)


class TestHouseRules:
    def test_ruff_finds_nothing(self):
        """ruff, with the rule set pyproject.toml chooses, reports no finding in the package, tests, bench, tools and the Ansible module."""
        result = _run("ruff", "check", "--no-cache", "migrate", "tests", "bench", "tools", "ansible")
        assert result.returncode == 0, result.stdout + result.stderr

    @pytest.mark.slow
    def test_mypy_finds_nothing(self):
        """mypy, strict on the pure modules and with its defaults elsewhere, reports no error in the package."""
        result = _run("mypy", "--no-incremental")
        assert result.returncode == 0, result.stdout + result.stderr
