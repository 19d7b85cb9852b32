"""Each service judged, and :func:`assess` itself: a pure function of two analysed nodes.

A service's certificate checks (:data:`migrate.policy.SERVICES`) are judged one
by one (dates, then trust, then EKU, then a public CA's clientAuth cut-off); a
service takes the worst status of its checks and of the services it needs, with
the reasons and fixes of the checks at that status, and the earliest day one of
them breaks.  The configuration adds checks (:mod:`._links`: the zones' subject
names) and services (neighbour zones, business-to-business calls into the Edge).
The certificates table says which certificate is public and which services rely
on its clientAuth.

Every fix is one that works on the day judged (``now``, the CLI's ``--at``): a
certificate relied on for clientAuth and issued under a public CA is never told
to "renew" (after the CA's cut-off the renewal has no clientAuth); it gets the
fixes that do work (DOMAIN.md condition 2.1: a private-CA client certificate;
condition 4: the peer turns its client-EKU check off).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

import attrs

from .. import policy
from ..checks import WARNING, Analysis, Finding
from ._chain import _public_chain, _verify, cutoff_entry, eku_allows
from ._links import link_services, link_verdicts, pair_findings
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
    Verdict,
)

_Verdict = Verdict  # the name earlier versions used


@attrs.frozen
class PublicCA:
    """What is known of the public CA above a certificate: its clientAuth cut-off and where that date comes from."""

    cutoff: date
    ca: str | None  # the table's entry; None: a public CA the table does not know (earliest date assumed)
    source: str


def _fix(kind: str, **values) -> str:
    return policy.ASSESS_FIXES[kind].format(**values)


def _day(moment: datetime) -> date:
    return moment.date()


def _stale_ssh(node, presented: Presented) -> bool:
    """The SSH bundle of the client store holds another certificate than the client store itself."""
    client = node.presented.get("client")
    return (
        presented.store == "client-ssh"
        and isinstance(client, Presented)
        and presented.file != client.file
        and presented.leaf.der != client.leaf.der
    )


def _judge(check: policy.CertCheck, nodes: dict, public_cas, now: datetime, public: dict) -> Verdict:
    """One certificate check of a service, with the fix that works on ``now``'s day."""
    node = nodes[check.presenter]
    verdict = _judge_once(check, nodes, public_cas, now, public)
    presented = node.presented[check.cert]
    if verdict.status != ACTIVE and isinstance(presented, Presented) and _stale_ssh(node, presented):
        # The client store holds a good certificate; the SSH bundle is an old one: regenerate it, nothing to buy.
        return attrs.evolve(
            verdict,
            reason=f"{verdict.reason} ({presented.file} is stale: it differs from the client store's certificate)",
            fix=policy.ASSESS_FIXES["stale-ssh"],
        )
    return verdict


def _judge_once(check: policy.CertCheck, nodes: dict, public_cas, now: datetime, public: dict) -> Verdict:
    node = nodes[check.presenter]
    presenter, verifier = _NAMES[check.presenter], _NAMES[check.verifier]
    presented = node.presented[check.cert]
    store = "client" if check.cert.startswith("client") else "server"
    if isinstance(presented, str):
        return Verdict(FAILED, presented, _fix("missing", store=store, presenter=presenter))
    leaf, label = presented.leaf, presented.label
    mode_on = nodes[check.verifier].checking_on if check.verifier in nodes else True
    oid = policy.EKU_RULES[check.eku][mode_on]
    relies = check.relies_on_client_auth and oid == policy.CLIENT_AUTH
    pub = public.get(presented.id)
    to_peer = check.verifier in ("public", "peer")
    values = {"cert": label, "store": store, "presenter": presenter, "verifier": verifier}
    if leaf.not_after <= now:
        expired = f"{label} expired on {leaf.not_after:%Y-%m-%d}"
        if relies and pub is not None:
            # A renewal from its public CA has no clientAuth on or after the cut-off: "renew" is no fix.
            kind = "expired-after-cutoff-peer" if to_peer else "expired-after-cutoff"
            return Verdict(
                FAILED,
                f"{expired}; {_cutoff_words(pub, now)}",
                _fix(kind, date=f"{pub.cutoff:%Y-%m-%d}", **values),
                presented.id,
                _day(leaf.not_after),
            )
        return Verdict(FAILED, expired, _fix("expired", **values), presented.id, _day(leaf.not_after))
    if leaf.not_before > now:
        return Verdict(
            FAILED,
            f"{label} is not valid before {leaf.not_before:%Y-%m-%d}",
            _fix("not-yet-valid", **values),
            presented.id,
        )
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
            kind = "untrusted"
            if check.verifier == "public":
                kind = "untrusted-public-client" if store == "client" else "untrusted-public"
            untrusted = Verdict(
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
        elif to_peer:
            kind = "eku-client-peer"
        else:
            kind = "eku-client" if check.eku == "checking-mode" else "eku-client-ssh"
        demand = f"usually requires {eku_name}" if check.on_eku == AT_RISK else f"requires {eku_name} ({why_eku})"
        return Verdict(
            check.on_eku,
            f"{check.judge or _JUDGES[check.verifier]} {demand}; {label} has {_eku_words(leaf)}",
            _fix(kind, **values),
            presented.id,
            _day(now) if check.on_eku == FAILED else None,
        )
    if relies and pub is not None:
        breaks = _breaks(leaf, pub)
        when = (
            f"it breaks when it expires on {breaks:%Y-%m-%d}"
            if breaks
            else f"its renewal on {leaf.not_after:%Y-%m-%d} still comes before the cut-off; the first renewal on or "
            f"after {pub.cutoff:%Y-%m-%d} carries no clientAuth"
        )
        return Verdict(
            AT_RISK,
            f"{label} relies on clientAuth ({why_eku}) but is issued under a public CA: {_cutoff_words(pub, now)}; "
            f"{when}",
            _fix(
                "cutoff-peer" if to_peer else "cutoff",
                breaks=f"{breaks:%Y-%m-%d}" if breaks else f"the first renewal on or after {pub.cutoff:%Y-%m-%d}",
                **values,
            ),
            presented.id,
            breaks,
        )
    return Verdict(ACTIVE, f"{check.judge or _JUDGES[check.verifier]} accepts {label} ({eku_name} required: {why_eku})")


def _breaks(leaf, pub: PublicCA) -> date | None:
    """The day a public certificate relied on for clientAuth breaks: its expiry, when its renewal falls after the cut-off."""
    expiry = _day(leaf.not_after)
    return expiry if expiry >= pub.cutoff else None


def _cutoff_words(pub: PublicCA, now: datetime) -> str:
    """The cut-off said as past or to come, relative to the day judged."""
    who = pub.ca or "an unknown public CA (the earliest known date is assumed)"
    if pub.cutoff <= _day(now):
        return f"{who}'s clientAuth cut-off ({pub.cutoff:%Y-%m-%d}) has passed: its renewal carries no clientAuth"
    return f"{who}'s clientAuth cut-off is {pub.cutoff:%Y-%m-%d}: a renewal on or after it carries no clientAuth"


def _eku_words(leaf) -> str:
    return "EKU " + "+".join(leaf.eku_names()) if leaf.eku is not None else "no EKU extension"


def _combine(service: policy.Service, verdicts: Sequence[Verdict], done: dict) -> ServiceResult:
    for need in service.needs:
        dep = done[need]
        if dep.status != ACTIVE:
            cert = ",".join(dep.certificates) or None
            verdicts = [*verdicts, Verdict(dep.status, f"needs {need} ({dep.status})", dep.fix, cert, dep.breaks_on)]
    if not verdicts:
        verdicts = [Verdict(ACTIVE, "every service it needs is active: " + ", ".join(service.needs))]
    status = max((v.status for v in verdicts), key=_RANK.__getitem__)
    bad = [v for v in verdicts if v.status == status] if status != ACTIVE else verdicts
    certs = tuple(dict.fromkeys(c for v in bad if v.cert for c in v.cert.split(",")))
    days = [v.breaks for v in verdicts if v.breaks is not None and v.status != ACTIVE]
    return ServiceResult(
        id=service.id,
        label=service.label,
        status=status,
        reason="; ".join(dict.fromkeys(v.reason for v in bad)),
        fix="; ".join(dict.fromkeys(v.fix for v in bad if v.fix)),
        certificates=certs,
        breaks_on=min(days) if days and status != ACTIVE else None,
    )


def _certificates(nodes: dict, public: dict, relied: dict, now: datetime) -> tuple[dict, ...]:
    out, seen = [], set()
    for role in ROLES:
        for presented in nodes[role].presented.values():
            if isinstance(presented, str) or presented.id in seen:
                continue
            seen.add(presented.id)
            leaf = presented.leaf
            pub = public.get(presented.id)
            uses = sorted(relied.get(presented.id, ()))
            has = leaf.eku is None or policy.CLIENT_AUTH in leaf.eku or policy.ANY_EKU in leaf.eku
            breaks = _breaks(leaf, pub) if pub is not None and uses and has else None
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
                    "public": pub is not None,
                    "client_auth_cutoff": pub.cutoff.isoformat() if pub else None,
                    "client_auth_cutoff_ca": pub.ca if pub else None,
                    "client_auth_cutoff_source": pub.source if pub else None,
                    "relied_on_for_client_auth_by": uses,
                    "breaks_on": breaks.isoformat() if breaks else None,
                }
            )
    return tuple(out)


def cutoff_table(
    cutoff: date | None = None, cutoffs: Mapping[str, date] | None = None
) -> tuple[tuple[policy.CutOff, ...], date, str]:
    """The cut-off table with the user's overrides, the date for a CA it does not know, and that date's source.

    ``cutoffs`` maps a table entry's ``ca`` (any case) to its date; ``cutoff`` replaces every date, the
    unknown CA's included.  An unknown name is a ``ValueError`` naming the known ones.
    """
    table = list(policy.CLIENT_AUTH_CUTOFFS)
    by_name = {entry.ca.casefold(): n for n, entry in enumerate(table)}
    for name, day in (cutoffs or {}).items():
        if name.casefold() not in by_name:
            raise ValueError(name)
        n = by_name[name.casefold()]
        table[n] = attrs.evolve(table[n], date=day.isoformat(), source="--cutoff", note="set by the user")
    if cutoff is not None:
        table = [attrs.evolve(e, date=cutoff.isoformat(), source="--cutoff", note="set by the user") for e in table]
        return tuple(table), cutoff, "--cutoff"
    unknown = min(date.fromisoformat(e.date) for e in table) if table else date.fromisoformat(policy.UNKNOWN_CA_CUTOFF)
    return tuple(table), unknown, "the earliest date of the cut-off table"


def assess(
    core: Analysis,
    edge: Analysis,
    *,
    public_cas: Sequence = (),
    public_source: str = "",
    now: datetime,
    cutoff: date | None = None,
    cutoffs: Mapping[str, date] | None = None,
    peers: Mapping[str, tuple] | None = None,
) -> Assessment:
    """Judge every service between ``core`` and ``edge`` on ``now``'s day.

    ``public_cas`` are the ``certs.CertInfo`` of the CAs treated as public (named by
    ``public_source`` in findings); ``cutoff`` replaces every public CA's clientAuth
    cut-off, ``cutoffs`` one CA's (by the table's name); ``peers`` maps a name the
    configuration uses for a peer (zone name, number, address or subject name) to the
    certificates it presents, leaf first.
    """
    table, unknown_cutoff, unknown_source = cutoff_table(cutoff, cutoffs)
    findings: list[Finding] = []
    nodes = {}
    for role, analysis in (("core", core), ("edge", edge)):
        nodes[role], found = node_view(role, analysis)
        findings += found
    findings += pair_findings(nodes, core, edge, now)
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

    def public_of(presented: Presented) -> PublicCA | None:
        found = _public_chain(presented, public_cas, now)
        if found is None:
            return None
        entry = cutoff_entry(*found, table)
        if entry is None:
            return PublicCA(unknown_cutoff, None, unknown_source)
        return PublicCA(date.fromisoformat(entry.date), entry.ca, f"{entry.source} (read {entry.read})")

    public: dict[str, PublicCA] = {}
    for role in ROLES:
        for presented in nodes[role].presented.values():
            if isinstance(presented, Presented) and presented.id not in public:
                pub = public_of(presented)
                if pub is not None:
                    public[presented.id] = pub
    extra = link_verdicts(nodes)
    done: dict[str, ServiceResult] = {}
    relied: dict[str, set] = {}
    for service in policy.SERVICES:
        verdicts = [_judge(check, nodes, public_cas, now, public) for check in service.checks]
        verdicts += extra.get(service.id, [])
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
    for service, verdicts in link_services(nodes, peers or {}, now, public_of, unknown_cutoff):
        done[service.id] = _combine(service, verdicts, done)
    certificates = _certificates(nodes, public, relied, now)
    findings += _cutoff_findings(certificates, public, nodes, now)
    return Assessment(
        nodes=(nodes["core"], nodes["edge"]),
        services=tuple(done.values()),
        certificates=certificates,
        findings=tuple(findings),
        at=_day(now),
    )


def _cutoff_findings(certificates: Sequence[dict], public: dict, nodes: dict, now: datetime) -> list[Finding]:
    out = []
    leaves = {p.id: p.leaf for role in ROLES for p in nodes[role].presented.values() if isinstance(p, Presented)}
    for cert in certificates:
        pub = public.get(cert["id"])
        if pub is None:
            continue
        leaf = leaves[cert["id"]]
        has = cert["eku"] is None or "clientAuth" in cert["eku"]
        if pub.ca is None:
            out.append(
                Finding(
                    "client-auth-cutoff-unknown-ca",
                    WARNING,
                    cert["id"],
                    f"{cert['id']} is issued under a public CA the cut-off table does not know ({leaf.issuer}): "
                    f"its clientAuth cut-off is taken as {pub.cutoff:%Y-%m-%d}, the earliest known",
                    "pass --cutoff CA=DATE once the CA's date is known, or correct policy.CLIENT_AUTH_CUTOFFS",
                )
            )
        if has and leaf.eku is not None and _day(leaf.not_before) >= pub.cutoff:
            out.append(
                Finding(
                    "client-auth-cutoff-contradicted",
                    WARNING,
                    cert["id"],
                    f"{cert['id']} was issued on {leaf.not_before:%Y-%m-%d} under {pub.ca or 'a public CA'} and "
                    f"carries clientAuth, though the cut-off table says {pub.cutoff:%Y-%m-%d}: the table is wrong "
                    "for this CA (or the CA is not public)",
                    "check the CA's current date and pass --cutoff CA=DATE, or correct policy.CLIENT_AUTH_CUTOFFS",
                )
            )
        if cert["public"] and cert["relied_on_for_client_auth_by"] and has:
            breaks = cert["breaks_on"]
            when = (
                f"it breaks when it expires on {breaks}"
                if breaks
                else f"the first renewal on or after {pub.cutoff:%Y-%m-%d} carries none"
            )
            out.append(
                Finding(
                    "client-auth-cutoff",
                    WARNING,
                    cert["id"],
                    f"{cert['id']} ({cert['subject']}) is issued under a public CA and "
                    f"{', '.join(cert['relied_on_for_client_auth_by'])} rely on its clientAuth: "
                    f"{_cutoff_words(pub, now)}; {when}",
                    "move the client certificate to a private CA that the Edge trusts"
                    + (f" before {breaks}" if breaks else ""),
                )
            )
    return out
