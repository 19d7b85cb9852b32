"""The install plan: a pure function from a node and a client identity to what ``install-client`` will do.

``make_install_plan(analysis, candidate) -> InstallPlan`` does no I/O.  As
for the migration, the plan *is* the dry run (``install-client --plan-only``
prints it): the writer (:mod:`migrate.clientstore`) executes exactly its
actions, each a :class:`~migrate.actions.ReplaceFile` whose ``reverse()``
puts back the previous bytes, mode and owner.

The X15.5 upload rule, enforced here as findings (a blocker refuses the install):

* the node is X15.5 (a client store exists) and passes precheck apart from its client store;
* the certificate carries ``clientAuth`` (unless ``--server-copy`` installs the
  server identity on purpose: a warning that states the consequence);
* the key is one Expressway uses, and it is the certificate's;
* the chain verifies to the node's own ``ca.pem`` (the reader verified it);
* its names include every name of the node's current server certificate (what the peer verifies);
* it is valid now and for at least the warning window.

The new files: ``client.pem`` (certificate, then chain), ``clientprivkey.pem``
(the key), and ``client-ssh.pem`` (key and certificate in the layout of the
node's ``server-ssh.pem``), with the policy's modes and their counterparts' owners.
"""

from __future__ import annotations

import hashlib

import attrs

from . import checks, policy
from .actions import Previous, ReplaceFile
from .checks import BLOCKER, Analysis, Finding
from .install_checks import candidate_findings, key_type
from .install_record import InstallJournal
from .model import CertInfo, KeyInfo
from .pem import armour, pem_blocks

CERTIFICATE = "CERTIFICATE"
_READY_STATES = (checks.X155, checks.CLIENT_INSTALLED, checks.INSTALL_INTERRUPTED)


@attrs.frozen
class InstallRequest:
    """What ``install-client`` was asked to install (paths as the user gave them)."""

    cert: str | None = None
    key: str | None = None
    chain: str | None = None
    peer: str | None = None
    server_copy: bool = False
    warn_days: int = policy.EXPIRY_WARNING_DAYS


@attrs.frozen
class PeerTrust:
    """Whether the peer node's ``ca.pem`` trusts the new certificate (with ``clientAuth``, as the SSH tunnels want)."""

    node: str
    trusted: bool
    reason: str | None

    def as_dict(self) -> dict[str, object]:
        return {"node": self.node, "trusted": self.trusted, "reason": self.reason}


@attrs.frozen
class Candidate:
    """The client identity to install, as facts the reader (:mod:`migrate.clientcert`) parsed and verified.

    ``cert_pem`` and ``key_pem`` are the bytes ``client.pem`` and
    ``clientprivkey.pem`` will hold; ``bundle_pem`` is ``client-ssh.pem``'s
    when it is given whole (``--server-copy``: the server bundle's bytes).
    None of them is ever shown.
    """

    cert_path: str
    key_path: str
    chain_path: str | None
    certs: tuple[CertInfo, ...]  # the leaf, then its chain
    key: KeyInfo
    names: tuple[str, ...]  # the leaf's common name and subject alternative names
    required_names: tuple[str, ...]  # those of the node's current server certificate
    trust_problem: str | None  # why the chain does not verify to the node's ca.pem; None when it does
    cert_pem: bytes = attrs.field(repr=False)
    key_pem: bytes = attrs.field(repr=False)
    bundle_pem: bytes | None = attrs.field(default=None, repr=False)
    server_copy: bool = False
    peer: PeerTrust | None = None

    @property
    def leaf(self) -> CertInfo:
        return self.certs[0]

    def summary(self) -> dict[str, object]:
        leaf = self.leaf
        return {
            "path": self.cert_path,
            "key": self.key_path,
            "chain": self.chain_path,
            "subject": leaf.subject,
            "issuer": leaf.issuer,
            "not_before": leaf.not_before.isoformat(timespec="seconds"),
            "not_after": leaf.not_after.isoformat(timespec="seconds"),
            "eku": list(leaf.eku_names()) if leaf.eku is not None else None,
            "names": list(self.names),
            "sha256": leaf.sha256,
            "key_type": key_type(self.key),
            "chain_length": len(self.certs),
        }


@attrs.frozen
class InstallPlan:
    """The findings and the ordered replacements for one node and one identity at one moment."""

    node: str
    fingerprint: str
    state: str
    candidate: Candidate
    findings: tuple[Finding, ...]
    actions: tuple[ReplaceFile, ...] = ()
    contents: dict[str, bytes] = attrs.field(factory=dict, repr=False, eq=False)  # by display path

    @property
    def ready(self) -> bool:
        return not checks.blockers(self.findings)


@attrs.frozen
class InstallReport:
    """What ``install-client`` planned or did: its document (``as_dict``) in every format."""

    plan: InstallPlan
    result: str  # planned, refused, installed, already-installed
    findings: tuple[Finding, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result != "refused" and not checks.blockers(self.findings)

    def as_dict(self) -> dict[str, object]:
        plan, candidate = self.plan, self.plan.candidate
        return {
            "format_version": policy.FORMAT_VERSION,
            "command": "install-client",
            "node": plan.node,
            "ok": self.ok,
            "result": self.result,
            "state": plan.state,
            "fingerprint": plan.fingerprint,
            "server_copy": candidate.server_copy,
            "consequence": policy.SERVER_COPY_CONSEQUENCE if candidate.server_copy else None,
            "certificate": candidate.summary(),
            "trusted_by_node": candidate.trust_problem is None,
            "peer": None if candidate.peer is None else candidate.peer.as_dict(),
            "findings": [f.as_dict() for f in self.findings],
            "actions": [a.as_dict() for a in plan.actions],
        }


def make_install_plan(analysis: Analysis, candidate: Candidate, *, warn_days: int = policy.EXPIRY_WARNING_DAYS) -> InstallPlan:
    """The plan to install ``candidate`` as the client identity of the analysed node: no actions while a blocker stands."""
    snap = analysis.snapshot
    state, _ = checks.node_state(analysis)
    findings = _node_findings(analysis, state) + candidate_findings(candidate, snap.now, warn_days)
    contents = _contents(analysis, candidate)
    planned = _actions(analysis, contents)
    found = snap.install_record
    if found is not None:
        planned, more = _against_journal(found, planned, snap.install_journal.path if snap.install_journal else None)
        findings += more
    actions = planned if not checks.blockers(findings) else ()
    return InstallPlan(
        node=str(snap.layout.root),
        fingerprint=snap.fingerprint,
        state=state,
        candidate=candidate,
        findings=tuple(findings),
        actions=actions,
        contents=contents,
    )


def _node_findings(analysis: Analysis, state: str) -> list[Finding]:
    snap = analysis.snapshot
    out: list[Finding] = []
    if state not in _READY_STATES:
        words = {checks.X154: "X15.4 (it has no client store yet)", checks.INTERRUPTED: "mid-migration"}
        out.append(
            Finding(
                "install-not-x155",
                BLOCKER,
                None,
                f"install-client needs an X15.5 node with a client store; this node is {words.get(state, state)}",
                "migrate it first (apply, or the appliance's upgrade), then install the client identity",
            )
        )
    client_paths = {snap.files[rule.name].path for rule in policy.CLIENT_FILES}
    out += [
        f
        for f in checks.precheck(analysis)
        if f.severity == BLOCKER and f.path not in client_paths
    ]
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle_pem(layout_of: bytes | None, key_pem: bytes, certs: tuple[bytes, ...]) -> bytes:
    """An SSH bundle of ``key_pem`` and the certificates (DER), in the layout of the bundle ``layout_of``.

    The layout is the block order (key first, or certificates first) and
    whether the chain follows the leaf; without a bundle to follow: the key,
    then the leaf (the shape of the appliance's ``server-ssh.pem``).
    """
    key_first, with_chain = True, False
    if layout_of is not None:
        labels = [block.label for block in pem_blocks(layout_of)]
        key_first = bool(labels) and labels[0] != CERTIFICATE
        with_chain = labels.count(CERTIFICATE) > 1
    shown = b"".join(armour(CERTIFICATE, der) for der in (certs if with_chain else certs[:1]))
    return key_pem + shown if key_first else shown + key_pem


def _contents(analysis: Analysis, candidate: Candidate) -> dict[str, bytes]:
    """The bytes of each client file the install writes, by display path."""
    files = analysis.snapshot.files
    cert_name, key_name, ssh_name = policy.store_files("client")
    server_ssh = files[policy.RULES[ssh_name].counterpart or ssh_name]
    out = {files[cert_name].path: candidate.cert_pem, files[key_name].path: candidate.key_pem}
    if server_ssh.exists:
        if candidate.bundle_pem is not None:
            bundle = candidate.bundle_pem
        else:
            bundle = bundle_pem(server_ssh.data, candidate.key_pem, tuple(c.der for c in candidate.certs))
        out[files[ssh_name].path] = bundle
    return out


def _actions(analysis: Analysis, contents: dict[str, bytes]) -> tuple[ReplaceFile, ...]:
    files = analysis.snapshot.files
    out = []
    for rule in policy.CLIENT_FILES:
        state = files[rule.name]
        if state.path not in contents:
            continue
        assert rule.counterpart is not None  # every client file has one (policy.FILES)
        source = files[rule.counterpart]
        data = contents[state.path]
        mode = policy.client_mode(rule, source.mode if source.mode is not None else rule.mode)
        uid, gid = source.uid or 0, source.gid or 0
        previous = None
        if state.kind == "file" and state.data is not None:
            assert state.mode is not None and state.uid is not None and state.gid is not None  # read whole: stat'ed
            previous = Previous(sha256=_sha(state.data), mode=state.mode, uid=state.uid, gid=state.gid)
            if (previous.sha256, previous.mode, previous.uid, previous.gid) == (_sha(data), mode, uid, gid):
                continue  # already in place
        out.append(ReplaceFile(path=state.path, mode=mode, uid=uid, gid=gid, sha256=_sha(data), previous=previous))
    return tuple(out)


def _target(action: ReplaceFile) -> tuple[str, str, int, int, int]:
    return action.path, action.sha256, action.mode, action.uid, action.gid


def _against_journal(
    found: InstallJournal, planned: tuple[ReplaceFile, ...], path: str | None
) -> tuple[tuple[ReplaceFile, ...], list[Finding]]:
    """With an install journal: the same identity again resumes (or finishes) it; another is refused."""
    wanted = {_target(a) for a in planned}
    recorded = {_target(a) for a in found.actions}
    if wanted <= recorded:  # the same install: what is in place is not planned again
        if found.applied:  # what is not in place is put back as the journal recorded it
            return tuple(a for a in found.actions if _target(a) in wanted), []
        return found.actions, []  # resume: every entry, with the previous state the journal kept
    if found.applied:
        finding = Finding(
            "install-present",
            BLOCKER,
            path,
            "the client store holds an identity an earlier install-client put there, and its journal keeps the "
            "one before it",
            "run rollback first (it restores the client store that install replaced), then install-client",
        )
    else:
        finding = Finding(
            "install-interrupted",
            BLOCKER,
            path,
            "an install of another client identity did not finish",
            "run install-client again with the same files, or rollback",
        )
    return (), [finding]
