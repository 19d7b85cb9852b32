"""The node's state, from the facts of a snapshot, as a table (h11's ``_state.py`` is the model)."""

from __future__ import annotations

from .. import install_record, policy, record
from ..model import Analysis
from ._stores import client_store_established

X154, X155, INTERRUPTED, MIXED = "x15.4", "x15.5", "interrupted", "mixed"
# An X15.5 node whose client store an install (install-client) replaced: rollback restores the previous one;
# and one whose install, or its rollback, did not finish (or whose install journal cannot be trusted).
CLIENT_INSTALLED, INSTALL_INTERRUPTED = "client-installed", "install-interrupted"

# With a journal: its state decides, and the node was migrated by this tool.  A journal that
# cannot be trusted is an interrupted migration (precheck says why: journal-invalid).
_UNTRUSTED = "untrusted"
_BY_JOURNAL = {record.APPLIED: X155, record.APPLYING: INTERRUPTED, _UNTRUSTED: INTERRUPTED}

# With an install journal, the newest operation, its state decides first; whether this tool migrated the node is
# still its migration journal's to say.
_BY_INSTALL = {
    install_record.APPLIED: CLIENT_INSTALLED,
    install_record.APPLYING: INSTALL_INTERRUPTED,
    install_record.ROLLING_BACK: INSTALL_INTERRUPTED,
    _UNTRUSTED: INSTALL_INTERRUPTED,
}

# Without one: (is any client file there, is the client store complete and the switch retired).
_BY_CLIENT_STORE = {
    (False, False): X154,
    (False, True): X154,
    (True, True): X155,
    (True, False): MIXED,
}


def node_state(analysis: Analysis) -> tuple[str, bool]:
    """The node's state and whether this tool migrated it (a journal exists)."""
    snap = analysis.snapshot
    if snap.install_exists:
        found_install = snap.install_record
        return _BY_INSTALL[_UNTRUSTED if found_install is None else found_install.state], snap.journal.exists
    if snap.journal.exists:
        found = snap.journal_record
        return _BY_JOURNAL[_UNTRUSTED if found is None else found.state], True
    present = any(snap.files[rule.name].exists for rule in policy.CLIENT_FILES)
    return _BY_CLIENT_STORE[present, client_store_established(analysis)], False
