"""pytest fixtures for upgrade rehearsals in a pipeline's own tests: installed with the package (``pytest11``).

A test file needs no conftest::

    import migrate

    def test_bundled_node_upgrades(x154_node):
        assert migrate.rehearse(x154_node).ok

    def test_public_edge_upgrades(make_x154_node):
        edge = make_x154_node(role="edge", issuer="public", eku=["serverAuth"])
        assert migrate.rehearse(edge).ok

Every fixture works in pyfakefs's ``fs``, as root there (so ``migrate.apply`` and
``migrate.rollback`` run for any user): nothing touches the real disk.

- ``x154_node``: the bundled sample X15.4 Core at ``/tandberg`` (the Edge with
  ``@pytest.mark.parametrize("x154_node", ["edge"], indirect=True)``); the root.
- ``make_x154_node(...)``: a node built from parameters (see :func:`_make_node`);
  returns its root.
- ``fault_injector``: :mod:`migrate.testing.faults`, to fail or stop a run at any
  file-system call in a test of your own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC

import pytest

SAMPLE_ROOT = "/tandberg"
ISSUERS = ("private", "public")


def _preload() -> None:
    """Import what a rehearsal uses before pyfakefs starts.

    pyfakefs unloads the modules first imported during a test, and
    cryptography's compiled core does not survive being imported twice.
    """
    from .. import certs, checks, clientcert, clientstore, csr, plan, writer  # noqa: F401
    from . import factory, faults, rehearsal, samples, tree  # noqa: F401


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """Before any test that uses a fake file system, import the migration (see :func:`_preload`)."""
    if "fs" in getattr(item, "fixturenames", ()):
        _preload()


@pytest.fixture(scope="session")
def _x154_samples() -> dict:
    """The bundled sample trees, read from the real disk once, before any fake file system starts."""
    from .samples import sample_names, sample_tree

    _preload()
    return {name: sample_tree(name) for name in sample_names()}


@pytest.fixture
def _x154_root(fs) -> Iterator[None]:
    """Run the test as root in the fake file system (apply and rollback refuse anyone else)."""
    from .rehearsal import active_fake_os, as_root

    fake_os = active_fake_os()
    if fake_os is None:  # pragma: no cover - fs is active here
        yield
        return
    with as_root(fake_os):
        yield


@pytest.fixture
def x154_node(request, _x154_samples, fs, _x154_root) -> str:
    """The bundled sample X15.4 node (``core``, or the parametrized name) in the fake file system; its root."""
    from .tree import write_tree

    name = getattr(request, "param", "core")
    if name not in _x154_samples:
        raise ValueError(f"no bundled sample {name!r}; there are {', '.join(sorted(_x154_samples))}")
    write_tree(_x154_samples[name], SAMPLE_ROOT)
    return SAMPLE_ROOT


@pytest.fixture
def make_x154_node(fs, _x154_root) -> Callable[..., str]:
    """Build nodes from parameters in the fake file system: ``make_x154_node(role="edge", eku=["serverAuth"])``."""
    made: list[str] = []

    def make(**kwargs) -> str:
        root = kwargs.pop("root", None) or (SAMPLE_ROOT if not made else f"{SAMPLE_ROOT}-{len(made) + 1}")
        _make_node(root, **kwargs)
        made.append(root)
        return root

    return make


@pytest.fixture
def fault_injector():
    """:mod:`migrate.testing.faults`: ``count_calls(run)``, ``inject(at=N, fault=...)``, ``PowerCut``."""
    from . import faults

    return faults


def _make_node(
    root: str,
    *,
    role: str = "core",
    eku: Sequence[str] | None = ("serverAuth", "clientAuth"),
    issuer="private",
    key_type: str = "rsa2048",
    key_format: str = "pkcs8",
    expires_in_days: int = 365,
    ssh: str = "same",
    client: str = "absent",
    settings: Mapping[str, str] | None = None,
    modes: Mapping[str, int] | None = None,
    owners: Mapping[str, tuple[int, int]] | None = None,
) -> None:
    """Write an X15.4 node at ``root`` (in the current, fake, file system).

    - ``role``: ``core`` or ``edge``.
    - ``eku``: the server certificate's EKUs (``serverAuth``, ``clientAuth``, or
      dotted OIDs); ``None`` leaves the extension out (good for both).
    - ``issuer``: ``"private"`` (an internal CA), ``"public"`` (a public CA), or a
      :class:`migrate.testing.factory.CA` of your own (``factory.make_ca(...)``).
    - ``key_type``: one of :data:`migrate.testing.factory.KEY_TYPES`; ``key_format``:
      ``pkcs8``, ``pkcs1`` (RSA) or ``sec1`` (EC).
    - ``expires_in_days``: the certificate's remaining life (negative: expired).
    - ``ssh``: ``same`` (the SSH bundle holds the server identity), ``other``
      (another key: a blocker) or ``absent``; ``client``: ``absent`` or
      ``migrated`` (an X15.5 node).
    - ``settings``: configuration lines, name to value written verbatim (quote
      it yourself), e.g. ``{"XCP TLS Certificate CVS EnableServerEkuUpload": "On"}``.
    - ``modes`` / ``owners``: per file, a mode or a ``(uid, gid)``; a bare name
      is in ``persistent/certs/``, a path with ``/`` is relative to the root.
    """
    from datetime import datetime, timedelta

    import attrs

    from .factory import CA, NodeSpec, issue, node_tree
    from .tree import write_tree

    if isinstance(issuer, CA):
        ca = issuer
    elif issuer in ISSUERS:
        ca = _ca(issuer)
    else:
        raise ValueError(f"issuer must be one of {', '.join(ISSUERS)} or a migrate.testing.factory.CA, not {issuer!r}")
    now = datetime.now(UTC)
    not_after = now + timedelta(days=expires_in_days)
    not_before = min(now - timedelta(days=30), not_after - timedelta(days=1))
    identity = issue(
        ca,
        f"{role}.example.com",
        eku=None if eku is None else list(eku),
        key_type=key_type,
        not_before=not_before,
        not_after=not_after,
    )
    spec = NodeSpec(
        role=role,
        identity=identity,
        ssh=ssh,
        client=client,
        settings=dict(settings or {}),
        key_format=key_format,
    )
    tree = node_tree(spec)
    for name, mode in (modes or {}).items():
        rel = _rel(name, tree)
        tree[rel] = attrs.evolve(tree[rel], mode=mode)
    for name, (uid, gid) in (owners or {}).items():
        rel = _rel(name, tree)
        tree[rel] = attrs.evolve(tree[rel], uid=uid, gid=gid)
    write_tree(tree, root)


_CAS: dict[str, object] = {}


def _ca(kind: str):
    """One private and one public CA per session: every node a test builds trusts the same issuers."""
    from .factory import make_ca

    if kind not in _CAS:
        _CAS[kind] = make_ca("Example Public CA2", public=True) if kind == "public" else make_ca("Example Internal CA1")
    return _CAS[kind]


def _rel(name: str, tree: Mapping) -> str:
    from ..policy import CERT_DIR

    rel = name if "/" in name else f"{CERT_DIR}/{name}"
    if rel not in tree:
        raise ValueError(f"the node has no {rel}")
    return rel
