"""Fixtures shared by the whole suite."""

import pytest
import structlog


@pytest.fixture(autouse=True)
def _reset_structlog():
    """cli.main() points structlog at the captured stderr; do not leave it pointing there."""
    yield
    structlog.reset_defaults()
