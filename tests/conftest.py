"""Fixtures shared by the whole suite, and the hypothesis profiles.

Profiles (choose with ``HYPOTHESIS_PROFILE=<name>``; ``ci`` by default):

- ``ci``: deterministic (``derandomize=True``: the same examples on every
  run, so a CI failure is never luck and never vanishes on a re-run; it also
  turns off the example database, which a fresh CI clone would not keep
  anyway).  100 examples, hypothesis's own default, for the cheap properties;
  the costly ones in ``test_properties.py`` run a fraction of that.  Finding
  new examples is the nightly run's job.
- ``dev``: random, with the example database, so a failure found locally is
  replayed first on the next run.
- ``nightly``: random and a hundred times longer (about half an hour for
  ``test_properties.py`` on two cores); a failure prints the blob that
  replays it (``@reproduce_failure``).

No deadline anywhere: a node's first certificate is made inside an example,
and pyfakefs and the fault injector make timings vary.
"""

import os

import pytest
import structlog
from hypothesis import settings

from migrate import logs

settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("nightly", max_examples=10000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _reset_structlog():
    """cli.main() points structlog at the captured stderr and sets a level; do not leave either behind."""
    yield
    structlog.reset_defaults()
    logs.reset()


@pytest.fixture(autouse=True)
def _faster_pyfakefs(request):
    """A test on pyfakefs's ``fs`` fixture runs under ``faster_pyfakefs``, as every rehearsal does.

    The answers are the same (``tests/test_faster_pyfakefs.py`` and ``TestFasterAsPlain`` prove it); the fault
    matrices, which run the engine thousands of times in pyfakefs, take about half the time.
    """
    if "fs" not in request.fixturenames:
        yield
        return
    from migrate.testing.rehearsal import faster_pyfakefs

    with faster_pyfakefs(request.getfixturevalue("fs")):
        yield


@pytest.fixture
def run(capsys):
    """Run the command line (``main``) with the given arguments, str() applied; return (exit code, stdout, stderr)."""
    from migrate.cli import main

    def run(*argv):
        code = main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
