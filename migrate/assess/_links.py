"""What the configuration says about the links: subject names, neighbour zones, calls into the Edge, the pair.

* **Names** (:func:`link_verdicts`): the Edge's traversal server zone with TLS
  verify On checks the Core's client certificate against its TLS verify subject
  name; the Core's traversal client zone with TLS verify On checks the Edge's
  server certificate against the peer address it connects to.  As the
  appliance does, the name is compared with the certificate's SAN (DNS names,
  IP addresses) and its CN.  Name checks apply whatever the EKU checking mode.
* **Inbound links** (:func:`link_services`): each node's own EKU checking mode
  applies to every inbound SIP TLS link it accepts.  A TLS neighbour zone
  (CUCM, CUBE, CMS, Unity, an older Expressway) is a service of its own; so are
  business-to-business and federation calls into an Edge that has a DNS zone.
  The peer's certificate comes from ``--peer NAME=FILE``; without it the service
  is ``at-risk`` and says what the peer must present.
* **The pair** (:func:`pair_findings`): both nodes on the same version; the
  X15.4 switch only on an Edge; the Core's ``ca.pem`` holding the issuer of its
  own client certificate (the technote says to upload it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime

from .. import checks, policy, xconfig
from ..checks import WARNING, Analysis, Finding
from ._chain import _verify, cert_names, name_matches
from ._results import _NAMES, ACTIVE, AT_RISK, FAILED, NodeView, Presented, Verdict, Zone

_TRAVERSAL = "uc-traversal-zone"


def _traversal_zones(node: NodeView, kind: str) -> list[Zone]:
    """The node's zones of ``kind``; the Unified Communications ones (Collaboration Edge On) when it marks any."""
    found = [z for z in node.zones if z.type.casefold() == kind.casefold()]
    marked = [z for z in found if z.uc_edge]
    return marked or found


def link_verdicts(nodes: Mapping[str, NodeView]) -> dict[str, list[Verdict]]:
    """The name checks of the traversal zone, by service id."""
    out: dict[str, list[Verdict]] = {}
    core, edge = nodes["core"], nodes["edge"]
    client = core.presented.get("client")
    if isinstance(client, Presented):
        names = cert_names(client)
        for zone in _traversal_zones(edge, policy.TRAVERSAL_SERVER):
            if zone.verify is not True or not zone.subject_name:
                continue
            if not name_matches(zone.subject_name, names):
                out.setdefault(_TRAVERSAL, []).append(
                    Verdict(
                        FAILED,
                        f"the Edge's traversal zone {zone.number} ('{zone.name}') verifies the subject name "
                        f"{zone.subject_name!r}, and {client.label} is for {', '.join(names) or 'no name'} "
                        "(name checks apply whatever the EKU checking mode)",
                        policy.ASSESS_FIXES["name-mismatch"].format(
                            presenter="Core",
                            store="client",
                            name=zone.subject_name,
                            verifier="Edge",
                            names=", ".join(names),
                        ),
                        client.id,
                    )
                )
    server = edge.presented.get("server")
    if isinstance(server, Presented):
        names = cert_names(server)
        for zone in _traversal_zones(core, policy.TRAVERSAL_CLIENT):
            if zone.verify is not True or not zone.peers:
                continue
            if not any(name_matches(peer, names) for peer in zone.peers):
                out.setdefault(_TRAVERSAL, []).append(
                    Verdict(
                        FAILED,
                        f"the Core's traversal client zone {zone.number} ('{zone.name}') connects to "
                        f"{', '.join(zone.peers)} with TLS verify On, and {server.label} is for "
                        f"{', '.join(names) or 'no name'}",
                        policy.ASSESS_FIXES["peer-address-mismatch"].format(
                            presenter="Edge",
                            store="server",
                            name=zone.peers[0],
                            verifier="Core",
                            names=", ".join(names),
                        ),
                        server.id,
                    )
                )
    return out


def _peer_cert(peers: Mapping[str, tuple], zone: Zone) -> tuple[str, Presented] | None:
    """The certificate ``--peer`` gave for a zone: by zone name, number, a peer address or the subject name."""
    keys = [zone.name, str(zone.number), *zone.peers, zone.subject_name]
    wanted = {k.casefold() for k in keys if k}
    for name, certs in peers.items():
        if name.casefold() in wanted and certs:
            return name, Presented(node="peer", store="client", file=name, source=name, certs=tuple(certs))
    return None


def link_services(
    nodes: Mapping[str, NodeView],
    peers: Mapping[str, tuple],
    now: datetime,
    public_of: Callable[[Presented], object],
    unknown_cutoff: date,
) -> list[tuple[policy.Service, list[Verdict]]]:
    """The services the configuration adds: each TLS neighbour zone, and calls from other organisations into the Edge."""
    out = []
    for role in ("core", "edge"):
        node = nodes[role]
        who = _NAMES[role]
        for zone in node.zones:
            if zone.type.casefold() != policy.NEIGHBOR.casefold() or not zone.tls:
                continue
            service = policy.Service(
                f"{role}-neighbor-zone-{zone.number}",
                f"Neighbour zone {zone.number} '{zone.name}' (peer -> {who}, SIP TLS)",
                "peer",
                role,
            )
            out.append((service, [_inbound(node, zone, peers, now, public_of, unknown_cutoff)]))
    edge = nodes["edge"]
    dns = [z for z in edge.zones if z.type.casefold() == policy.DNS_ZONE.casefold()]
    if dns:
        service = policy.Service(
            "edge-inbound-b2b",
            "Business-to-business and federation calls into the Edge (SIP TLS)",
            "peer",
            "edge",
        )
        out.append((service, [_inbound(edge, dns[0], peers, now, public_of, unknown_cutoff, b2b=True)]))
    return out


def _inbound(
    node: NodeView,
    zone: Zone,
    peers: Mapping[str, tuple],
    now: datetime,
    public_of: Callable[[Presented], object],
    unknown_cutoff: date,
    *,
    b2b: bool = False,
) -> Verdict:
    """An inbound SIP TLS link: the peer's certificate judged by ``node``'s checking mode, trust and zone name."""
    who = _NAMES[node.role]
    mode = "On" if node.checking_on else "Off"
    oid = policy.EKU_RULES["checking-mode"][node.checking_on]
    eku = policy.EKU_NAMES[oid]
    found = _peer_cert(peers, zone)
    if found is None:
        if b2b:
            if not node.checking_on:
                return Verdict(
                    ACTIVE,
                    f"the {who}'s EKU checking is Off: callers' certificates need serverAuth where they carry an EKU "
                    "(inferred reading of the Off mode)",
                )
            return Verdict(
                AT_RISK,
                f"callers from other organisations present their own certificates, and with the {who}'s EKU checking "
                f"On each must carry clientAuth, which public CAs stop issuing (earliest known cut-off "
                f"{unknown_cutoff:%Y-%m-%d})",
                policy.ASSESS_FIXES["b2b-unseen"].format(verifier=who, name=zone.name),
                f"peer:{zone.name}",
            )
        named = (
            f" and be named {zone.subject_name or zone.peers[0]}"
            if zone.verify and (zone.subject_name or zone.peers)
            else ""
        )
        return Verdict(
            AT_RISK,
            f"the tool has no certificate for the peer of zone {zone.number} ('{zone.name}'): with the {who}'s EKU "
            f"checking {mode} it must carry {eku}",
            policy.ASSESS_FIXES["peer-unseen"].format(name=zone.name, eku=eku, verifier=who, named=named),
            f"peer:{zone.name}",  # the certificate at fault is the peer's, which the tool has not seen
        )
    name, presented = found
    leaf, label = presented.leaf, f"the peer certificate {name!r} ({presented.leaf.subject_short})"
    values = {"cert": label, "verifier": who}
    if leaf.not_after <= now:
        return Verdict(
            FAILED,
            f"{label} expired on {leaf.not_after:%Y-%m-%d}",
            policy.ASSESS_FIXES["peer-expired"].format(**values),
            presented.id,
            leaf.not_after.date(),
        )
    problem = _verify(presented, node.trusted, now, None)
    if problem is not None:
        return Verdict(
            FAILED,
            f"{label} does not chain to a CA in the {who}'s ca.pem: {problem}",
            policy.ASSESS_FIXES["peer-untrusted"].format(**values),
            presented.id,
        )
    if _verify(presented, node.trusted, now, oid) is not None:
        kind = "peer-eku-client" if oid == policy.CLIENT_AUTH else "peer-eku-server"
        return Verdict(
            FAILED,
            f"the {who}'s EKU checking is {mode}: it requires {eku}, and {label} has "
            + ("EKU " + "+".join(leaf.eku_names()) if leaf.eku is not None else "no EKU extension"),
            policy.ASSESS_FIXES[kind].format(**values),
            presented.id,
        )
    wanted = zone.subject_name or (zone.peers[0] if zone.peers else "")
    if zone.verify and wanted and not name_matches(wanted, cert_names(presented)):
        names = cert_names(presented)
        return Verdict(
            FAILED,
            f"zone {zone.number} ('{zone.name}') verifies the name {wanted!r}, and {label} is for {', '.join(names)}",
            policy.ASSESS_FIXES["peer-name"].format(name=wanted, names=", ".join(names)),
            presented.id,
        )
    pub = public_of(presented)
    if pub is not None and oid == policy.CLIENT_AUTH:
        cutoff = pub.cutoff  # type: ignore[attr-defined]
        expiry = leaf.not_after.date()
        breaks = expiry if expiry >= cutoff else None
        return Verdict(
            AT_RISK,
            f"{label} relies on clientAuth (the {who}'s EKU checking is On) and is issued under a public CA whose "
            f"cut-off is {cutoff:%Y-%m-%d}" + (f": it breaks when it expires on {breaks:%Y-%m-%d}" if breaks else ""),
            policy.ASSESS_FIXES["peer-cutoff"].format(
                breaks=f"{breaks:%Y-%m-%d}" if breaks else f"the first renewal on or after {cutoff:%Y-%m-%d}",
                verifier=who,
            ),
            presented.id,
            breaks,
        )
    return Verdict(ACTIVE, f"the {who} accepts {label} ({eku} required: its EKU checking is {mode})")


def pair_findings(nodes: Mapping[str, NodeView], core: Analysis, edge: Analysis, now: datetime) -> list[Finding]:
    """What is wrong with the two nodes as a pair."""
    out = []
    states = {nodes[role].state for role in ("core", "edge")}
    if states == {checks.X154, checks.X155}:
        out.append(
            Finding(
                "pair-versions-differ",
                WARNING,
                None,
                f"the Core is {nodes['core'].state} and the Edge {nodes['edge'].state}: Cisco says both nodes of a "
                "pair run the same version",
                "upgrade both nodes to the same version",
            )
        )
    if any(xconfig.is_on(s.value) for s in core.setting(policy.RETIRED_SETTING)):
        out.append(
            Finding(
                "server-eku-upload-on-core",
                WARNING,
                core.snapshot.config.path,
                f"'{policy.RETIRED_SETTING}' is On on the Core: the X15.4 switch only applies to an Edge",
                "nothing it allowed applies to a Core: its client certificate needs clientAuth; the migration "
                "retires the line",
            )
        )
    client = nodes["core"].presented.get("client")
    if isinstance(client, Presented) and nodes["core"].trusted:
        # Judged at the certificate's own start: this is about trust, not dates (an expired one is said elsewhere).
        problem = _verify(client, nodes["core"].trusted, client.leaf.not_before, None)
        if problem is not None:
            out.append(
                Finding(
                    "core-ca-lacks-client-issuer",
                    WARNING,
                    core.snapshot.files[policy.CA_FILE].path,
                    f"the Core's ca.pem does not hold the CA that issued its own client certificate "
                    f"({client.leaf.issuer}): {problem}",
                    "upload the issuing CA's certificate (and its chain) to the Core's trusted CA list, as the "
                    "technote says",
                )
            )
    _ = edge
    return out
