"""The nodes as the assessment sees them: the EKU checking mode, the trusted CAs, the certificates presented.

``node_view(role, analysis)`` is a pure function of an analysed node: which
certificate each store presents (on X15.4, the copy of the server store the
migration will make), which CAs its ``ca.pem`` trusts, and whether its EKU
checking is On or Off, with the findings worth saying about them.
"""

from __future__ import annotations

from .. import checks, policy, xconfig
from ..checks import INFO, WARNING, Analysis, Finding
from ._results import _NAMES, NodeView, Presented


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
