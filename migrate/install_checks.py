"""The X15.5 upload rule for a client identity, as findings: a pure function of the candidate's facts.

:func:`candidate_findings` judges what ``install-client`` was given (its EKU,
its key, its names, its validity, whether its chain verified to the node's
``ca.pem`` and, with ``--peer``, to the peer's); the node's own findings and
the plan are :mod:`migrate.install`'s.  Pure: no I/O, no cryptography.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from . import policy
from .checks import BLOCKER, INFO, WARNING, Finding
from .model import CertInfo, KeyInfo, describe, key_matches, key_supported

if TYPE_CHECKING:
    from .install import Candidate


def key_type(key: KeyInfo) -> str:
    """A key's type as the reports show it: ``rsa:4096``, ``ec:secp256r1``, ``dsa:2048``."""
    return f"{key.algorithm}:{key.curve}" if key.curve else f"{key.algorithm}:{key.bits}"


def candidate_findings(candidate: Candidate, now: datetime, warn_days: int) -> list[Finding]:
    """Every finding about the identity to install; blockers refuse it."""
    leaf, path = candidate.leaf, candidate.cert_path
    out: list[Finding] = []
    if not leaf.allows(policy.CLIENT_AUTH):
        if candidate.server_copy:
            out.append(
                Finding(
                    "install-server-copy",
                    WARNING,
                    path,
                    f"the server certificate ({describe(leaf)}) is installed as the client certificate on purpose: "
                    f"{policy.SERVER_COPY_CONSEQUENCE}",
                    "install a client certificate with serverAuth and clientAuth from a private CA the peer trusts",
                )
            )
        else:
            out.append(
                Finding(
                    "install-no-client-auth",
                    BLOCKER,
                    path,
                    f"the certificate has no clientAuth EKU ({describe(leaf)}): X15.5 refuses it for the client "
                    "store, and the peer would refuse it",
                    "have a private CA sign the request from `expressway-migrate csr` (serverAuth and clientAuth); "
                    "--server-copy installs the server identity instead, on purpose",
                )
            )
    elif not leaf.allows(policy.SERVER_AUTH):
        out.append(
            Finding(
                "install-no-server-auth",
                WARNING,
                path,
                f"the certificate has clientAuth but no serverAuth ({describe(leaf)}): an Edge whose EKU checking "
                "is Off still checks serverAuth where an EKU is present",
                "ask the CA for both serverAuth and clientAuth",
            )
        )
    if not key_supported(candidate.key):
        out.append(
            Finding(
                "install-key-unsupported",
                BLOCKER,
                candidate.key_path,
                f"the key is {key_type(candidate.key)}: Expressway uses RSA of {policy.MIN_RSA_BITS} bits or more, "
                "or ECDSA on P-256, P-384 or P-521",
                "make a new request with `expressway-migrate csr --new-key rsa:4096` (or ec:p256)",
            )
        )
    elif not key_matches(candidate.key, leaf):
        out.append(
            Finding(
                "install-key-mismatch",
                BLOCKER,
                candidate.key_path,
                "the key is not the private key of the certificate",
                "pass the key written next to the request with --key (a request made with --reuse-key needs none)",
            )
        )
    missing = _missing_names(candidate.names, candidate.required_names)
    if missing:
        out.append(
            Finding(
                "install-names-missing",
                BLOCKER,
                path,
                f"the certificate does not name {', '.join(missing)}, which the node's current certificate names "
                "and its peer verifies",
                "request it with `expressway-migrate csr`, which copies the subject and names of the current certificate",
            )
        )
    out += _validity_findings(leaf, path, now, warn_days)
    if candidate.trust_problem is not None:
        out.append(
            Finding(
                "install-chain-untrusted",
                BLOCKER,
                path,
                f"the certificate does not verify to the node's own ca.pem: {candidate.trust_problem}",
                "give the intermediate certificates with --chain, or add the issuing CA to ca.pem first",
            )
        )
    peer = candidate.peer
    if peer is not None and not peer.trusted:
        out.append(
            Finding(
                "install-peer-untrusted",
                WARNING,
                peer.node,
                f"the peer node does not accept the certificate as a client (clientAuth, its ca.pem): {peer.reason}",
                "add the issuing CA to the peer's ca.pem before the peer must accept this certificate",
            )
        )
    elif peer is not None:
        out.append(
            Finding(
                "install-peer-trusts",
                INFO,
                peer.node,
                "the peer node accepts the certificate as a client (clientAuth, its ca.pem)",
            )
        )
    return out


def _missing_names(names: tuple[str, ...], required: tuple[str, ...]) -> list[str]:
    have = {name.casefold() for name in names}
    return [name for name in dict.fromkeys(required) if name.casefold() not in have]


def _validity_findings(leaf: CertInfo, path: str, now: datetime, warn_days: int) -> list[Finding]:
    if leaf.not_before > now:
        return [
            Finding(
                "install-cert-not-yet-valid",
                BLOCKER,
                path,
                f"the certificate is not valid before {leaf.not_before:%Y-%m-%d %H:%M} UTC",
                "check the clocks of the CA and of this machine, then install it once it is valid",
            )
        ]
    if leaf.not_after <= now:
        return [
            Finding(
                "install-cert-expired",
                BLOCKER,
                path,
                f"the certificate expired on {leaf.not_after:%Y-%m-%d}",
                "have the CA sign the request again",
            )
        ]
    if leaf.not_after - now < timedelta(days=warn_days):
        return [
            Finding(
                "install-cert-expiring",
                BLOCKER,
                path,
                f"the certificate expires on {leaf.not_after:%Y-%m-%d}, within {warn_days} days",
                "have the CA sign it for longer (or lower --warn-days on purpose)",
            )
        ]
    return []
