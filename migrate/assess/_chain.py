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


# The checking mode Off (policy.EKU_RULES["checking-mode"][False]): the client-EKU check is skipped but serverAuth
# is still checked where the certificate carries an EKU, so a clientAuth-only certificate fails: an *inferred*
# reading (DOMAIN.md), kept in the policy table, applied here by the validator below.
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
        return None, _plain(str(exc), oid)
    return tuple(verified.chain), None


# cryptography's own words ("candidates exhausted: chain construction exceeds max depth", ...) never reach the
# user: a verification error is said in ours.  Our EKU validator's message is recognised by what it names.
_PLAIN = (
    ("expired", "a certificate of the chain has expired"),
    ("not yet valid", "a certificate of the chain is not yet valid"),
    ("signature", "a signature of the chain does not verify"),
)


def _plain(message: str, oid: str | None) -> str:
    """A verification failure in the tool's words."""
    if oid is not None and f"no {policy.EKU_NAMES[oid]} EKU" in message:
        return f"no {policy.EKU_NAMES[oid]} EKU"
    lowered = message.casefold()
    for needle, words in _PLAIN:
        if needle in lowered:
            return words
    return "no chain of valid certificates leads to a CA of the list"


def _verify(presented: Presented, anchors: Sequence, now: datetime, oid: str | None) -> str | None:
    """Why ``presented`` does not verify against ``anchors`` (with the EKU ``oid`` when given), or None."""
    return _chain(presented, anchors, now, oid)[1]


def _public_chain(presented: Presented, public_cas: Sequence, now: datetime) -> tuple[tuple, tuple] | None:
    """The organisation names and key identifiers (hex) of the CAs above ``presented`` when it chains to a public CA.

    None when it does not.  The chain is built at ``now`` and, failing that (a certificate that expired
    or is not yet valid), at the leaf's own start: the CA that issued it is the same either way.
    """
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    chain, _ = _chain(presented, public_cas, now, None)
    if chain is None:
        chain, _ = _chain(presented, public_cas, presented.leaf.not_before, None)
    if chain is None:
        return None
    orgs = tuple(
        attr.value for cert in chain[1:] for attr in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )
    key_ids = []
    for cert in chain[1:]:
        try:
            key_ids.append(cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex())
        except x509.ExtensionNotFound:
            continue
    return orgs, tuple(key_ids)


def cutoff_entry(
    orgs: Sequence[str], key_ids: Sequence[str] = (), cutoffs: Sequence[policy.CutOff] = policy.CLIENT_AUTH_CUTOFFS
) -> policy.CutOff | None:
    """The table's entry for a public CA known by its key identifiers (tried first) or organisation names."""
    wanted = {k.casefold().replace(":", "") for k in key_ids}
    for entry in cutoffs:
        if wanted & {k.casefold().replace(":", "") for k in entry.key_ids}:
            return entry
    for org in orgs:
        for entry in cutoffs:
            if any(needle.casefold() in str(org).casefold() for needle in entry.orgs):
                return entry
    return None


def client_auth_cutoff(orgs: Sequence[str], cutoffs: Sequence[policy.CutOff] = policy.CLIENT_AUTH_CUTOFFS) -> date:
    """The clientAuth cut-off of a public CA known by its organisation names (the earliest known if none matches)."""
    entry = cutoff_entry(orgs, (), cutoffs)
    return date.fromisoformat(entry.date if entry is not None else policy.UNKNOWN_CA_CUTOFF)


def cert_names(presented: Presented) -> tuple[str, ...]:
    """The names a peer matches against a zone's subject name: the SAN's DNS names and IP addresses, then the CN."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509_certificate(presented.leaf.der)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    names += [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return tuple(dict.fromkeys(names))


def name_matches(wanted: str, names: Sequence[str]) -> bool:
    """Whether ``wanted`` is one of ``names``, case ignored; a ``*.`` name matches one leftmost label."""
    target = wanted.strip().rstrip(".").casefold()
    for name in names:
        have = name.strip().rstrip(".").casefold()
        if have == target:
            return True
        if have.startswith("*.") and "." in target and target.split(".", 1)[1] == have[2:]:
            return True
    return False
