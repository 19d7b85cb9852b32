"""Find and load the bundled sample nodes (``sample_fs/``).

Git cannot store modes or owners, so ``sample_fs/manifest.json`` holds them:
:func:`sample_tree` reads a sample node from disk and puts the manifest's
modes and owners on every entry.  The samples live in ``migrate/_sample_fs``
in an installed wheel and in ``sample_fs/`` beside the package in a source
checkout or editable install.

Nothing heavy is imported here at module level.
"""

from __future__ import annotations

import json
import pathlib
from typing import TYPE_CHECKING

from ..errors import NodeError

if TYPE_CHECKING:
    from .tree import Tree

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
_HINT = "reinstall expressway-migrate, or in a source checkout run tools/make_samples.py"


def _candidates() -> tuple[pathlib.Path, ...]:
    package = pathlib.Path(__file__).parent.parent  # migrate/
    return (package / "_sample_fs", package.parent / "sample_fs")


def sample_dir() -> pathlib.Path:
    """The directory of the bundled samples: the first candidate holding a manifest."""
    for candidate in _candidates():
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    raise NodeError(
        "the bundled sample nodes are missing",
        id="sample-missing",
        hint=_HINT,
        path=str(_candidates()[-1]),
    )


def load_manifest() -> dict:
    """The parsed ``manifest.json`` (a fresh copy each call), checked for its shape."""
    path = sample_dir() / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NodeError(
            f"the sample manifest cannot be read: {exc}", id="sample-manifest-invalid", hint=_HINT, path=str(path)
        ) from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format_version") != MANIFEST_FORMAT
        or not isinstance(manifest.get("owners"), dict)
        or not isinstance(manifest.get("nodes"), dict)
    ):
        raise NodeError(
            f"the sample manifest is not format_version {MANIFEST_FORMAT} with owners and nodes",
            id="sample-manifest-invalid",
            hint=_HINT,
            path=str(path),
        )
    return manifest


def sample_names() -> tuple[str, ...]:
    """The names of the bundled sample nodes, in manifest order (``core``, ``edge``)."""
    return tuple(load_manifest()["nodes"])


def sample_tree(name: str) -> Tree:
    """The sample node ``name`` as a tree, with the manifest's modes and owners on every entry.

    An entry on disk that the manifest lacks raises ``sample-manifest-incomplete``;
    a manifest entry with nothing on disk raises ``sample-manifest-stale``.
    """
    import attrs

    from .tree import read_tree

    manifest = load_manifest()
    nodes, owners = manifest["nodes"], manifest["owners"]
    if name not in nodes:
        raise NodeError(
            f"no sample node called {name!r}", id="sample-unknown", hint=f"choose one of {', '.join(nodes)}"
        )
    node_dir = sample_dir() / name
    tree = read_tree(node_dir)
    meta = nodes[name]
    missing = sorted(set(tree) - set(meta))
    if missing:
        raise NodeError(
            f"the sample manifest lacks {len(missing)} entries of {name!r}: {', '.join(missing)}",
            id="sample-manifest-incomplete",
            hint=_HINT,
            path=str(node_dir),
        )
    stale = sorted(set(meta) - set(tree))
    if stale:
        raise NodeError(
            f"the sample manifest lists {len(stale)} entries of {name!r} that are not there: {', '.join(stale)}",
            id="sample-manifest-stale",
            hint=_HINT,
            path=str(node_dir),
        )
    out = {}
    for rel, entry in tree.items():
        item = meta[rel]
        try:
            mode = int(item["mode"], 8)
            uid, gid = owners[item["owner"]], owners[item["group"]]
        except (KeyError, TypeError, ValueError):
            raise NodeError(
                f"the sample manifest entry {name}/{rel} is malformed: {item!r}",
                id="sample-manifest-invalid",
                hint=_HINT,
            ) from None
        out[rel] = attrs.evolve(entry, mode=mode, uid=uid, gid=gid)
    return out
