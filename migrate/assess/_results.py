"""The values the assessment answers with: a presented certificate, a node as assessed, a service's verdict, the whole.

Frozen values with ``as_dict()`` for the JSON document (API.md, ``assess``), and
the words and ranks every room shares.  No logic beyond presenting them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import attrs

from .. import policy
from ..checks import Finding

FORMAT_VERSION = policy.FORMAT_VERSION  # one version for every document
ACTIVE, FAILED, AT_RISK = "active", "failed", "at-risk"
_RANK = {ACTIVE: 0, AT_RISK: 1, FAILED: 2}
ROLES = ("core", "edge")
_NAMES = {"core": "Core", "edge": "Edge", "public": "remote party", "peer": "peer"}
# Who judges a presented certificate, as the subject of a sentence.
_JUDGES = {
    "core": "the Core",
    "edge": "the Edge",
    "public": "a party that trusts the public CAs",
    "peer": "a peer (CUCM)",
}


@attrs.frozen
class Presented:
    """The certificate a node presents from one store, and the file it came from."""

    node: str  # core / edge
    store: str  # client / client-ssh / server
    file: str  # the file the node will present
    source: str  # the file read: ``file`` itself, or on X15.4 the server file the migration copies
    certs: tuple = attrs.field(repr=False)  # certs.CertInfo, leaf first

    @property
    def leaf(self):
        return self.certs[0]

    @property
    def id(self) -> str:
        return f"{self.node}:{self.file}"

    @property
    def label(self) -> str:
        planned = f" (the copy of {self.source} the migration makes)" if self.source != self.file else ""
        return f"the {_NAMES[self.node]}'s {self.file}{planned}"


@attrs.frozen
class Zone:
    """A zone of a node's configuration, as far as TLS between the nodes and their peers goes."""

    number: int
    name: str
    type: str  # TraversalServer, TraversalClient, Neighbor, DNS, ...
    verify: bool | None  # SIP TLS Verify Mode: On / Off / not stated (None)
    subject_name: str  # SIP TLS Verify Subject Name ("" when not stated)
    peers: tuple[str, ...]  # peer addresses (TraversalClient, Neighbor)
    transport: str  # SIP Transport ("" when not stated)
    uc_edge: bool  # Collaboration Edge On: the Unified Communications traversal zone

    @property
    def tls(self) -> bool:
        return self.transport.casefold() == "tls" or (not self.transport and self.verify is True)


@attrs.frozen
class Verdict:
    """One check's outcome: status, why, the fix, the certificate at fault and the day it breaks."""

    status: str
    reason: str
    fix: str = ""
    cert: str | None = None
    breaks: date | None = None


@attrs.frozen
class NodeView:
    """What the assessment needs to know about one node."""

    role: str
    path: str
    state: str
    checking_on: bool
    checking_source: str  # configured / default
    trusted: tuple = attrs.field(repr=False)  # CertInfo of ca.pem; () when unusable
    presented: Mapping[str, Presented | str] = attrs.field(repr=False)  # store -> certificate or why none
    zones: tuple[Zone, ...] = ()

    def as_dict(self) -> dict:
        return {
            "node": self.path,
            "state": self.state,
            "checking_mode": "On" if self.checking_on else "Off",
            "checking_source": self.checking_source,
        }


@attrs.frozen
class ServiceResult:
    """The verdict on one service: status, why, the fix, and the certificates at fault."""

    id: str
    label: str
    status: str
    reason: str
    fix: str = ""
    certificates: tuple[str, ...] = ()
    breaks_on: date | None = None  # the day it breaks (or broke) if nothing changes; None when unknown or never

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "label": self.label,
            "status": self.status,
            "reason": self.reason,
            "fix": self.fix,
            "certificates": list(self.certificates),
            "breaks_on": self.breaks_on.isoformat() if self.breaks_on else None,
        }


@attrs.frozen
class Assessment:
    """Every service's verdict, the certificates judged, and the findings."""

    nodes: tuple[NodeView, ...]
    services: tuple[ServiceResult, ...]
    certificates: tuple[dict, ...]
    findings: tuple[Finding, ...]
    at: date | None = None  # the day judged

    @property
    def failed(self) -> bool:
        return any(s.status == FAILED for s in self.services)

    def service(self, service_id: str) -> ServiceResult:
        return next(s for s in self.services if s.id == service_id)

    def as_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "command": "assess",
            "ok": not self.failed,
            "at": self.at.isoformat() if self.at else None,
            **{node.role: node.as_dict() for node in self.nodes},
            "services": [s.as_dict() for s in self.services],
            "certificates": list(self.certificates),
            "findings": [f.as_dict() for f in self.findings],
        }
