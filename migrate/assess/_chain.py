"""Chain verification with ``cryptography.x509.verification``, and a public CA's clientAuth cut-off.

Does a presented certificate chain to a set of anchors at a given moment, with
or without an EKU rule?  The verifier is a :class:`ClientVerifier` whose
extension policies (leaf and CAs) accept any EKU
(``ExtensionPolicy.may_be_present(ExtendedKeyUsage, AGNOSTIC, validator)``),
the validator callback applying the rule when one is given.  A ClientVerifier's
built-in EKU check (clientAuth, always) cannot express the checking mode Off,
where the client-EKU check is skipped but serverAuth is still checked where the
certificate carries an EKU: hence the callback, which expresses On, Off and the
SSH tunnels' "clientAuth always" alike.  No I/O; cryptography is imported where
it is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from .. import policy
from ..certs import x509_certificate
from ._results import Presented

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
