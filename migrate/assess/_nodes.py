"""The nodes as the assessment sees them: the EKU checking mode, the trusted CAs, the certificates presented.

``node_view(role, analysis)`` is a pure function of an analysed node: which
certificate each store presents (on X15.4, the copy of the server store the
migration will make), which CAs its ``ca.pem`` trusts, and whether its EKU
checking is On or Off, with the findings worth saying about them.
"""

from __future__ import annotations

from .. import checks, policy, xconfig
from ..checks import INFO, WARNING, Analysis, Finding
from ..checks._config import unplaced_findings
from ._results import _NAMES, NodeView, Presented, Zone

_CLIENT_CERT, _, _CLIENT_SSH = policy.store_files("client")


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
    """Each store's certificate, or the reason there is none.

    On X15.4 each client file is read from its counterpart: the migration copies it byte for byte.
    That ``client-ssh.pem`` is a byte copy of ``server-ssh.pem`` is *inferred* (DOMAIN.md: the technote
    shows both bundles with the upgrade's time, so the appliance probably regenerates them; a byte
    copy of a bundle holding the same identity is taken as equivalent).
    """
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
    ca = analysis.material.get(policy.CA_FILE)
    trusted = ca.certs if ca is not None and ca.error is None else ()
    if not trusted:
        findings.append(
            Finding(
                "ca-list-unusable",
                WARNING,
                analysis.snapshot.files[policy.CA_FILE].path,
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
    findings += unplaced_findings(analysis, blocker=False)
    presented = _presented(role, analysis, state)
    findings += _stale_ssh(role, analysis, presented)
    view = NodeView(
        role=role,
        path=str(analysis.snapshot.layout.root),
        state=state,
        checking_on=checking_on,
        checking_source=source,
        trusted=trusted,
        presented=presented,
        zones=zones(analysis),
    )
    return view, findings


def _stale_ssh(role: str, analysis: Analysis, presented: dict) -> list[Finding]:
    """client-ssh.pem holding another certificate than client.pem: the SSH tunnels present a stale identity."""
    ssh, client = presented.get("client-ssh"), presented.get("client")
    if not (isinstance(ssh, Presented) and isinstance(client, Presented)) or ssh.file != _CLIENT_SSH:
        return []
    if ssh.leaf.der == client.leaf.der:
        return []
    return [
        Finding(
            "client-ssh-stale",
            WARNING,
            analysis.snapshot.files[_CLIENT_SSH].path,
            f"the {_NAMES[role]}'s {_CLIENT_SSH} holds another certificate ({ssh.leaf.subject_short}) than "
            f"{_CLIENT_CERT} ({client.leaf.subject_short}): the SSH tunnels present the stale one",
            policy.ASSESS_FIXES["stale-ssh"],
        )
    ]


def zones(analysis: Analysis) -> tuple[Zone, ...]:
    """The zones the configuration states (``Zones Zone <n> ...``), in number order."""
    prefix = policy.ZONE_PREFIX.casefold().split()
    found: dict[int, dict[str, str]] = {}
    for setting in analysis.settings:
        words = setting.name.split()
        if len(words) < 4 or [w.casefold() for w in words[:2]] != prefix or not words[2].isdigit():
            continue
        found.setdefault(int(words[2]), {})[" ".join(words[3:]).casefold()] = setting.value
    out = []
    for number, values in sorted(found.items()):
        kind = values.get(policy.ZONE_TYPE.casefold(), "")

        def get(name: str, kind: str = kind, values: dict = values) -> str:
            return values.get(f"{kind} {name}".casefold(), "")

        peers = tuple(
            address for peer in range(1, 7) if (address := get(policy.ZONE_PEER_ADDRESS.format(peer=peer)).strip())
        )
        out.append(
            Zone(
                number=number,
                name=values.get(policy.ZONE_NAME.casefold(), "") or f"zone {number}",
                type=kind,
                verify=xconfig.is_on(get(policy.ZONE_TLS_VERIFY_MODE)),
                subject_name=get(policy.ZONE_TLS_VERIFY_NAME).strip(),
                peers=peers,
                transport=get(policy.ZONE_TRANSPORT).strip(),
                uc_edge=xconfig.is_on(get(policy.ZONE_UC_EDGE)) is True,
            )
        )
    return tuple(out)
