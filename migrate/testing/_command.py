"""The ``rehearse`` command: copy a node into memory (bounded, only read) or take the bundled samples, and rehearse.

The engine never imports the test kit; the command line reaches the rehearsal
through this module, which returns a typed result with ``as_dict()`` like
:mod:`migrate.commands`.
"""

from __future__ import annotations

import attrs

from .. import policy
from ..model import Layout


@attrs.frozen
class Rehearsals:
    """``rehearse``: one rehearsal per node (or bundled sample), each with its cycle and crash points."""

    reports: tuple

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)

    def as_dict(self) -> dict[str, object]:
        return {
            "format_version": policy.FORMAT_VERSION,
            "command": "rehearse",
            "ok": self.ok,
            "crash_points": sum(r.crash_points for r in self.reports),
            "rehearsals": [r.as_dict() for r in self.reports],
        }


INSTALL_FILE_ROLES = ("certificate", "private key", "chain")  # rehearse --install-client CERT [KEY [CHAIN]]


def rehearse(
    node: str | None = None,
    *,
    samples: list[str] | None = None,
    crash: bool = True,
    install_client: list[str] | None = None,
) -> Rehearsals:
    """Rehearse the whole cycle in memory on a copy of ``node`` (only read), or on the bundled ``samples``.

    ``install_client`` names the certificate, and optionally its key and chain,
    to rehearse ``install-client`` with on the migrated copy: read here, from
    the real disk (bounded, as ``install-client`` reads them), before the fake
    file system starts.
    """
    if node is not None:
        tree, root = read_node_tree(node)
        files = read_install_files(install_client or [])
        from . import rehearsal  # after the read: a refused node costs no import of the cycle

        return Rehearsals((rehearsal.rehearse_tree(tree, root, crash=crash, install_client=files),))
    if install_client:
        raise ValueError("--install-client needs NODE: the samples are rehearsed without it")
    from . import rehearsal
    from .samples import sample_names

    return Rehearsals(tuple(rehearsal.rehearse_samples(samples or list(sample_names()), crash=crash)))


def read_install_files(paths: list[str]) -> tuple[bytes, ...]:
    """The bytes of ``--install-client CERT [KEY [CHAIN]]``, each at most ``policy.MAX_PEM_BYTES``;
    ``install-input-unreadable`` (the path, and which file it is) when one cannot be read."""
    if len(paths) > len(INSTALL_FILE_ROLES):
        raise ValueError(f"--install-client takes at most {len(INSTALL_FILE_ROLES)} files")
    if not paths:
        return ()
    from ..clientcert import read_input

    return tuple(
        read_input(path, what, private=what == "private key")
        for path, what in zip(paths, INSTALL_FILE_ROLES, strict=False)
    )


def read_node_tree(node: str) -> tuple[dict, str]:
    """The whole tree of the node at ``node`` (to copy into memory), and its absolute root; bounded by policy."""
    import os

    from ..errors import NodeError
    from ..scan import check_node
    from .tree import TreeTooLarge, read_tree

    layout = Layout.for_node(node)
    check_node(layout)  # missing, not a directory, not a node, unreadable: the same error as every command's
    root = str(layout.root)
    max_bytes, max_entries = policy.REHEARSE_MAX_BYTES, policy.REHEARSE_MAX_ENTRIES
    try:
        return read_tree(root, max_total_bytes=max_bytes, max_entries=max_entries), root
    except TreeTooLarge as exc:
        raise NodeError(
            f"the node at {root} is too large to rehearse in memory: {exc}",
            id="node-too-large",
            hint=f"a rehearsal copies the whole node into memory, at most {max_bytes >> 20} MiB of files"
            f" and {max_entries} paths; the migration itself only needs the certificate store and the"
            " configuration: copy persistent/certs and persistent/xconfiguration.txt with cp -a into an empty"
            " directory's persistent/ and rehearse that",
        ) from None
    except (OSError, ValueError) as exc:
        if not os.path.lexists(root):
            raise NodeError(
                f"no node at {root}", id="node-missing", hint="pass the node root, e.g. /tandberg"
            ) from None
        raise NodeError(
            f"cannot read the node at {root}: {exc}", id="node-unreadable", hint="pass a readable node root"
        ) from None


@attrs.frozen
class LaidOut:
    """``sample``: the bundled nodes laid out on disk, and the owners that could not be set (not root)."""

    dest: str
    nodes: tuple[dict[str, object], ...]
    findings: tuple = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "format_version": policy.FORMAT_VERSION,
            "command": "sample",
            "node": self.dest,
            "ok": True,
            "nodes": list(self.nodes),
            "findings": [f.as_dict() for f in self.findings],
        }


def lay_out(dest: str, role: str | None = None) -> LaidOut:
    """Write the bundled X15.4 sample nodes under ``dest`` (``dest/core``, ``dest/edge``), or the one of ``role``
    at ``dest`` itself, with the manifest's modes, and its owners when run as root.

    ``dest`` must not exist, or be an empty directory: nothing is ever written over.  If writing fails, what
    was written is removed again.
    """
    import os
    import shutil

    from ..errors import MigrateError
    from ..model import WARNING, Finding
    from .samples import load_manifest, sample_names, sample_tree
    from .tree import write_tree

    names = sample_names()
    if role is not None and role not in names:
        raise MigrateError(
            f"no sample node called {role!r}", id="sample-unknown", hint=f"choose one of {', '.join(names)}"
        )
    top = os.path.abspath(dest)
    if os.path.lexists(top) and not (os.path.isdir(top) and not os.path.islink(top) and not os.listdir(top)):
        raise MigrateError(
            f"{top} already exists and is not an empty directory",
            id="sample-dest-exists",
            hint="choose a new directory: sample never writes over anything",
        )
    roots = {role: top} if role is not None else {name: os.path.join(top, name) for name in names}
    as_root = os.geteuid() == 0
    owners = {uid: name for name, uid in load_manifest()["owners"].items()}
    created_top = not os.path.lexists(top)
    nodes, findings = [], []
    try:
        for name, root in roots.items():
            tree = sample_tree(name)
            write_tree(tree, root, owners=as_root)
            os.chmod(root, 0o755)  # the node root: not writable by group or others, whatever the umask
            nodes.append({"role": name, "path": root, "entries": len(tree)})
            if not as_root:
                wanted = sorted({owners.get(e.uid, str(e.uid)) for e in tree.values()} - {"root"})
                findings.append(
                    Finding(
                        "sample-owners-not-set",
                        WARNING,
                        root,
                        f"not run as root: every file of the {name} sample is yours; the manifest gives some to"
                        f" root and to {', '.join(wanted)}",
                        "run sample as root for the appliance's owners; the modes are set either way",
                    )
                )
        if role is None:
            os.chmod(top, 0o755)
    except OSError as exc:
        if created_top:
            shutil.rmtree(top, ignore_errors=True)
        else:  # it was empty: everything in it is ours
            for child in os.listdir(top):
                path = os.path.join(top, child)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
        raise MigrateError(
            f"cannot write the sample under {top}: {exc.strerror or exc}",
            id="sample-unwritable",
            hint="choose a directory on a writable file system with room for a few hundred KiB",
        ) from None
    return LaidOut(top, tuple(nodes), tuple(findings))
