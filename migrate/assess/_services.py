"""Each service judged, and :func:`assess` itself: a pure function of two analysed nodes.

A service's certificate checks (:data:`migrate.policy.SERVICES`) are judged one
by one (dates, then trust, then EKU, then a public CA's clientAuth cut-off); a
service takes the worst status of its checks and of the services it needs, with
the reasons and fixes of the checks at that status.  The certificates table says
which certificate is public and which services rely on its clientAuth.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import attrs

from .. import policy
from ..checks import WARNING, Analysis, Finding
from ._chain import _public_chain, _verify, client_auth_cutoff, eku_allows
from ._nodes import node_view
from ._results import (
    _JUDGES,
    _NAMES,
    _RANK,
    ACTIVE,
    AT_RISK,
    FAILED,
    ROLES,
    Assessment,
    Presented,
    ServiceResult,
)


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
