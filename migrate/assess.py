"""Will it still work after the upgrade?  The Core/Edge EKU readiness assessment.

``assess(core, edge, public_cas=..., now=...) -> Assessment`` is a pure function
of two :class:`~migrate.checks.Analysis` values, the list of CAs that count as
public, and the moment to judge at: no I/O (the CLI reads the nodes and the
public CA list).

The connections are data (:data:`migrate.policy.SERVICES`): for each service,
which certificate each side presents (the initiator its *client* certificate,
the acceptor its *server* certificate), whose trust judges it, and which EKU
rule applies (:data:`migrate.policy.EKU_RULES`).  An X15.4 node is assessed as
the migration will leave it: its client store a copy of its server store.

How a certificate is judged, with ``cryptography.x509.verification``:

1. Its validity dates against ``now`` (an expired certificate fails everywhere).
2. The chain, with a :class:`ClientVerifier` whose extension policies accept any
   EKU (``ExtensionPolicy.may_be_present(ExtendedKeyUsage, AGNOSTIC, None)``),
   against the verifier's own ``ca.pem`` (or the public CA list).  A failure here
   is a trust failure, reported as such.
3. The EKU, by verifying again with an EKU validator callback in both extension
   policies (leaf and CAs) that applies the rule.  A ClientVerifier's built-in EKU
   check (clientAuth, always) cannot express the checking mode Off, where the
   client-EKU check is skipped but serverAuth is still checked where the
   certificate carries an EKU: hence the callback, which expresses On, Off and the
   SSH tunnels' "clientAuth always" alike.  Running the two passes separately tells
   a trust failure from an EKU failure without parsing error messages.

A ``peer`` verifier (CUCM: its trust list is not ours to see) gets no chain check;
its EKU rule is applied to the parsed certificate (``CertInfo.allows``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

import attrs

from . import checks, policy, xconfig
from .certs import x509_certificate
from .checks import INFO, WARNING, Analysis, Finding

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
class NodeView:
    """What the assessment needs to know about one node."""

    role: str
    path: str
    state: str
    checking_on: bool
    checking_source: str  # configured / default
    trusted: tuple = attrs.field(repr=False)  # CertInfo of ca.pem; () when unusable
    presented: Mapping[str, Presented | str] = attrs.field(repr=False)  # store -> certificate or why none

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

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "label": self.label,
            "status": self.status,
            "reason": self.reason,
            "fix": self.fix,
            "certificates": list(self.certificates),
        }


@attrs.frozen
class Assessment:
    """Every service's verdict, the certificates judged, and the findings."""

    nodes: tuple[NodeView, ...]
    services: tuple[ServiceResult, ...]
    certificates: tuple[dict, ...]
    findings: tuple[Finding, ...]

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
            **{node.role: node.as_dict() for node in self.nodes},
            "services": [s.as_dict() for s in self.services],
            "certificates": list(self.certificates),
            "findings": [f.as_dict() for f in self.findings],
        }


# --- The nodes ----------------------------------------------------------------


def _checking_default() -> bool:
    default = xconfig.is_on(policy.CHECKING_DEFAULT)
    assert default is not None  # the policy's default is On
    return default


def _checking_mode(analysis: Analysis) -> tuple[bool, str, list[Finding]]:
    lines = analysis.setting(policy.CHECKING_SETTING)
    if not lines:
        return _checking_default(), "default", []
    value = xconfig.is_on(lines[-1].value)
    if value is None:
        finding = Finding(
            "checking-mode-unreadable",
            WARNING,
            analysis.snapshot.config.path,
            f"{policy.CHECKING_SETTING} is {lines[-1].value!r} (line {lines[-1].line_no}), neither On nor Off: "
            f"assessed as the default, {policy.CHECKING_DEFAULT}",
            "set it to On or Off",
        )
        return _checking_default(), "default", [finding]
    return value, "configured", []


def _presented(role: str, analysis: Analysis, state: str) -> dict:
    """Each store's certificate, or the reason there is none."""
    files = analysis.snapshot.files
    out: dict = {}
    for store, names in policy.PRESENTED_FILES.items():
        out[store] = f"the {_NAMES[role]} has no {' or '.join(names)}"
        for name in names:
            counterpart = policy.RULES[name].counterpart
            source = counterpart if state == checks.X154 and counterpart else name
            if not files[source].exists:
                continue
            material = analysis.material.get(source)
            if material is None or material.error is not None or not material.certs:
                why = material.error.message if material is not None and material.error else files[source].kind
                out[store] = f"the {_NAMES[role]}'s {source} cannot be used ({why})"
            else:
                out[store] = Presented(node=role, store=store, file=name, source=source, certs=material.certs)
            break
    return out


def node_view(role: str, analysis: Analysis) -> tuple[NodeView, list[Finding]]:
    """The :class:`NodeView` of an analysed node, and what is worth saying about it."""
    state, _ = checks.node_state(analysis)
    checking_on, source, findings = _checking_mode(analysis)
    ca = analysis.material.get("ca.pem")
    trusted = ca.certs if ca is not None and ca.error is None else ()
    if not trusted:
        findings.append(
            Finding(
                "ca-list-unusable",
                WARNING,
                analysis.snapshot.files["ca.pem"].path,
                f"the {_NAMES[role]}'s ca.pem is missing or cannot be read: it trusts no certificate",
                "install the trusted CA list (ca.pem)",
            )
        )
    if state == checks.X154:
        findings.append(
            Finding(
                "assessed-after-migration",
                INFO,
                str(analysis.snapshot.layout.root),
                f"the {_NAMES[role]} is X15.4: assessed as the migration leaves it, its client store a copy of "
                f"its server store, EKU checking {'On' if checking_on else 'Off'} ({source})",
            )
        )
    view = NodeView(
        role=role,
        path=str(analysis.snapshot.layout.root),
        state=state,
        checking_on=checking_on,
        checking_source=source,
        trusted=trusted,
        presented=_presented(role, analysis, state),
    )
    return view, findings


# --- Verification -------------------------------------------------------------


eku_allows = policy.eku_allows


def _verifier(anchors: Sequence, now: datetime, oid: str | None):
    """A ClientVerifier trusting ``anchors`` at ``now`` whose EKU rule is ``oid`` (None: any EKU)."""
    from cryptography import x509
    from cryptography.x509 import verification as v

    def validator(_policy, _cert, ext):
        if oid is not None and ext is not None and not eku_allows({o.dotted_string for o in ext}, oid):
            raise ValueError(f"no {policy.EKU_NAMES[oid]} EKU")

    eku = (x509.ExtendedKeyUsage, v.Criticality.AGNOSTIC, validator)
    return (
        v.PolicyBuilder()
        .store(v.Store([x509_certificate(a.der) for a in anchors]))
        .time(now)
        .extension_policies(
            ca_policy=v.ExtensionPolicy.webpki_defaults_ca().may_be_present(*eku),
            ee_policy=v.ExtensionPolicy.webpki_defaults_ee().may_be_present(*eku),
        )
        .build_client_verifier()
    )


def _chain(presented: Presented, anchors: Sequence, now: datetime, oid: str | None) -> tuple[tuple | None, str | None]:
    """The verified chain of ``presented`` (with the EKU ``oid`` when given), or why there is none."""
    from cryptography.x509 import verification as v

    if not anchors:
        return None, "the trusted CA list is empty"
    try:
        verified = _verifier(anchors, now, oid).verify(
            x509_certificate(presented.leaf.der), [x509_certificate(c.der) for c in presented.certs[1:]]
        )
    except v.VerificationError as exc:
        return None, str(exc).split(" (encountered processing")[0].removeprefix("validation failed: ")
    return tuple(verified.chain), None


def _verify(presented: Presented, anchors: Sequence, now: datetime, oid: str | None) -> str | None:
    """Why ``presented`` does not verify against ``anchors`` (with the EKU ``oid`` when given), or None."""
    return _chain(presented, anchors, now, oid)[1]


def _public_chain(presented: Presented, public_cas: Sequence, now: datetime) -> tuple | None:
    """The organisation names of the CAs above ``presented`` when it chains to a public CA, else None."""
    from cryptography.x509.oid import NameOID

    chain, _ = _chain(presented, public_cas, now, None)
    if chain is None:
        return None
    return tuple(
        attr.value for cert in chain[1:] for attr in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )


def client_auth_cutoff(orgs: Sequence[str], cutoffs=policy.CLIENT_AUTH_CUTOFFS) -> date:
    """The clientAuth cut-off of a public CA known by its organisation names (the default if none matches)."""
    for org in orgs:
        for needle, day in cutoffs:
            if needle.casefold() in str(org).casefold():
                return date.fromisoformat(day)
    return date.fromisoformat(policy.DEFAULT_CLIENT_AUTH_CUTOFF)


# --- Services -----------------------------------------------------------------


@attrs.frozen
class _Verdict:
    status: str
    reason: str
    fix: str = ""
    cert: str | None = None


def _fix(kind: str, **values) -> str:
    return policy.ASSESS_FIXES[kind].format(**values)


def _judge(check: policy.CertCheck, nodes: dict, public_cas, now, public: dict) -> _Verdict:
    """One certificate check of a service."""
    node = nodes[check.presenter]
    presenter, verifier = _NAMES[check.presenter], _NAMES[check.verifier]
    presented = node.presented[check.cert]
    store = "client" if check.cert.startswith("client") else "server"
    if isinstance(presented, str):
        return _Verdict(FAILED, presented, _fix("missing", store=store, presenter=presenter))
    leaf, label = presented.leaf, presented.label
    values = {"cert": label, "store": store, "presenter": presenter, "verifier": verifier}
    if leaf.not_after <= now:
        return _Verdict(
            FAILED, f"{label} expired on {leaf.not_after:%Y-%m-%d}", _fix("expired", **values), presented.id
        )
    if leaf.not_before > now:
        return _Verdict(
            FAILED,
            f"{label} is not valid before {leaf.not_before:%Y-%m-%d}",
            _fix("not-yet-valid", **values),
            presented.id,
        )
    mode_on = nodes[check.verifier].checking_on if check.verifier in nodes else True
    oid = policy.EKU_RULES[check.eku][mode_on]
    eku_name = policy.EKU_NAMES[oid]
    why_eku = (
        f"the {verifier}'s EKU checking is {'On' if mode_on else 'Off'}" if check.eku == "checking-mode" else "always"
    )
    if check.verifier == "peer":
        eku_problem = None if eku_allows(leaf.eku, oid) else f"no {eku_name} EKU"
    else:
        anchors = public_cas if check.verifier == "public" else nodes[check.verifier].trusted
        problem = _verify(presented, anchors, now, None)
        if problem is not None:
            where = "a public CA" if check.verifier == "public" else f"a CA in the {verifier}'s ca.pem"
            kind = "untrusted-public" if check.verifier == "public" else "untrusted"
            untrusted = _Verdict(
                check.on_trust,
                f"{label} ({leaf.issuer}) does not chain to {where}: {problem}",
                _fix(kind, **values),
                presented.id,
            )
            if check.on_trust == FAILED or eku_allows(leaf.eku, oid):
                return untrusted
            # A party we cannot see may still trust the issuer: a missing EKU is the worse news.
            eku_problem = f"no {eku_name} EKU"
        else:
            eku_problem = _verify(presented, anchors, now, oid)
    if eku_problem is not None:
        if oid == policy.SERVER_AUTH:
            kind = "eku-server"
        else:
            kind = "eku-client-peer" if check.verifier in ("public", "peer") else "eku-client"
        demand = f"usually requires {eku_name}" if check.on_eku == AT_RISK else f"requires {eku_name} ({why_eku})"
        return _Verdict(
            check.on_eku,
            f"{check.judge or _JUDGES[check.verifier]} {demand}; {label} has {_eku_words(leaf)}",
            _fix(kind, **values),
            presented.id,
        )
    cutoff = public.get(presented.id)
    if check.relies_on_client_auth and oid == policy.CLIENT_AUTH and cutoff is not None:
        return _Verdict(
            AT_RISK,
            f"{label} relies on clientAuth ({why_eku}) but is issued under a public CA: its renewal after "
            f"{cutoff:%Y-%m-%d} will carry no clientAuth",
            _fix("cutoff", date=f"{cutoff:%Y-%m-%d}", **values),
            presented.id,
        )
    return _Verdict(
        ACTIVE, f"{check.judge or _JUDGES[check.verifier]} accepts {label} ({eku_name} required: {why_eku})"
    )


def _eku_words(leaf) -> str:
    return "EKU " + "+".join(leaf.eku_names()) if leaf.eku is not None else "no EKU extension"


def _combine(service: policy.Service, verdicts: Sequence[_Verdict], done: dict) -> ServiceResult:
    for need in service.needs:
        dep = done[need]
        if dep.status != ACTIVE:
            cert = ",".join(dep.certificates) or None
            verdicts = [*verdicts, _Verdict(dep.status, f"needs {need} ({dep.status})", dep.fix, cert)]
    if not verdicts:
        verdicts = [_Verdict(ACTIVE, "every service it needs is active: " + ", ".join(service.needs))]
    status = max((v.status for v in verdicts), key=_RANK.__getitem__)
    bad = [v for v in verdicts if v.status == status] if status != ACTIVE else verdicts
    certs = tuple(dict.fromkeys(c for v in bad if v.cert for c in v.cert.split(",")))
    return ServiceResult(
        id=service.id,
        label=service.label,
        status=status,
        reason="; ".join(dict.fromkeys(v.reason for v in bad)),
        fix="; ".join(dict.fromkeys(v.fix for v in bad if v.fix)),
        certificates=certs,
    )


def _certificates(nodes: dict, public: dict, relied: dict) -> tuple[dict, ...]:
    out, seen = [], set()
    for role in ROLES:
        for presented in nodes[role].presented.values():
            if isinstance(presented, str) or presented.id in seen:
                continue
            seen.add(presented.id)
            leaf = presented.leaf
            cutoff = public.get(presented.id)
            out.append(
                {
                    "id": presented.id,
                    "node": role,
                    "file": presented.file,
                    "read_from": presented.source,
                    "subject": leaf.subject,
                    "issuer": leaf.issuer,
                    "not_after": leaf.not_after.isoformat(),
                    "eku": None if leaf.eku is None else list(leaf.eku_names()),
                    "public": cutoff is not None,
                    "client_auth_cutoff": cutoff.isoformat() if cutoff else None,
                    "relied_on_for_client_auth_by": sorted(relied.get(presented.id, ())),
                }
            )
    return tuple(out)


def assess(
    core: Analysis,
    edge: Analysis,
    *,
    public_cas: Sequence = (),
    public_source: str = "",
    now: datetime,
    cutoff: date | None = None,
) -> Assessment:
    """Judge every service of :data:`policy.SERVICES` between ``core`` and ``edge`` at ``now``.

    ``public_cas`` are the ``certs.CertInfo`` of the CAs treated as public (named by
    ``public_source`` in findings); ``cutoff`` replaces every public CA's clientAuth cut-off.
    """
    findings: list[Finding] = []
    nodes = {}
    for role, analysis in (("core", core), ("edge", edge)):
        nodes[role], found = node_view(role, analysis)
        findings += found
    if not public_cas:
        findings.append(
            Finding(
                "public-ca-list-empty",
                WARNING,
                public_source or None,
                "no CA counts as public (no readable public CA list): remote parties are assumed to trust nothing, "
                "and no public-CA clientAuth cut-off can be seen",
                "pass --public-ca FILE with the public CAs' certificates",
            )
        )
    public = {}
    for role in ROLES:
        for presented in nodes[role].presented.values():
            if isinstance(presented, Presented) and presented.id not in public:
                orgs = _public_chain(presented, public_cas, now)
                if orgs is not None:
                    public[presented.id] = cutoff or client_auth_cutoff(orgs)
    done: dict[str, ServiceResult] = {}
    relied: dict[str, set] = {}
    for service in policy.SERVICES:
        verdicts = [_judge(check, nodes, public_cas, now, public) for check in service.checks]
        for check in service.checks:
            presented = nodes[check.presenter].presented[check.cert]
            mode_on = nodes[check.verifier].checking_on if check.verifier in nodes else True
            if (
                isinstance(presented, Presented)
                and check.relies_on_client_auth
                and policy.EKU_RULES[check.eku][mode_on] == policy.CLIENT_AUTH
            ):
                relied.setdefault(presented.id, set()).add(service.id)
        done[service.id] = _combine(service, verdicts, done)
    certificates = _certificates(nodes, public, relied)
    for cert in certificates:
        has = cert["eku"] is None or "clientAuth" in cert["eku"]
        if cert["public"] and cert["relied_on_for_client_auth_by"] and has:
            findings.append(
                Finding(
                    "client-auth-cutoff",
                    WARNING,
                    cert["id"],
                    f"{cert['id']} ({cert['subject']}) is issued under a public CA and "
                    f"{', '.join(cert['relied_on_for_client_auth_by'])} rely on its clientAuth: "
                    f"its renewal after {cert['client_auth_cutoff']} will carry no clientAuth",
                    "move the client certificate to a private CA that the Edge trusts before that date",
                )
            )
    return Assessment(
        nodes=(nodes["core"], nodes["edge"]),
        services=tuple(done.values()),
        certificates=certificates,
        findings=tuple(findings),
    )
