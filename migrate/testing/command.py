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


def rehearse(node: str | None = None, *, samples: list[str] | None = None, crash: bool = True) -> Rehearsals:
    """Rehearse the whole cycle in memory on a copy of ``node`` (only read), or on the bundled ``samples``."""
    if node is not None:
        tree, root = read_node_tree(node)
        from . import rehearsal  # after the read: a refused node costs no import of the cycle

        return Rehearsals((rehearsal.rehearse_tree(tree, root, crash=crash),))
    from . import rehearsal
    from .samples import sample_names

    return Rehearsals(tuple(rehearsal.rehearse_samples(samples or list(sample_names()), crash=crash)))


def read_node_tree(node: str) -> tuple[dict, str]:
    """The whole tree of the node at ``node`` (to copy into memory), and its absolute root; bounded by policy."""
    import os

    from ..errors import NodeError
    from .tree import TreeTooLarge, read_tree

    root = str(Layout.for_node(node).root)
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
