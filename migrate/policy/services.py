"""What breaks, and for whom: the services between a Core and an Edge, the public CAs' clientAuth cut-offs
and the fixes that work (DOMAIN.md, "Who presents what"); part of :mod:`migrate.policy`.
"""

from __future__ import annotations

import attrs

from . import (  # the store's facts, defined first in the package
    CLIENT_AUTH,
    SERVER_AUTH,
)

# --- What a missing clientAuth breaks (DOMAIN.md, "Who presents what") ------

NO_CLIENT_AUTH_CONSEQUENCE = (
    "the upgrade copies it into the client store, and this node presents it whenever it initiates TLS: "
    "on a Core the Edge refuses the SSH tunnels (TCP 2222) whatever its EKU checking mode, so MRA and the "
    "WebRTC proxy fail, and the traversal zone fails while the Edge's checking is On; on an Edge, mTLS "
    "peers such as Webex that check clientAuth refuse it"
)
NO_CLIENT_AUTH_FIX = (
    "after the upgrade install a client certificate with serverAuth and clientAuth from a private CA "
    "in the client store (public CAs no longer issue clientAuth); turning EKU checking off is not a fix"
    " for the SSH tunnels, MRA or WebRTC; on an Edge you may instead keep it and have each mTLS peer turn"
    " its client-EKU check off (condition 4)"
)
# The same, said of an X15.5 node whose client store is a copy of server.pem: the store as it is.
NO_CLIENT_AUTH_CONSEQUENCE_X155 = (
    "the client store holds a copy of it (client.pem), which this node presents whenever it initiates TLS: "
    "on a Core the Edge refuses the SSH tunnels (TCP 2222) whatever its EKU checking mode, so MRA and the "
    "WebRTC proxy fail, and the traversal zone fails while the Edge's checking is On; on an Edge, mTLS "
    "peers such as Webex that check clientAuth refuse it"
)
NO_CLIENT_AUTH_FIX_X155 = (
    "install a client certificate with serverAuth and clientAuth from a private CA in the client store "
    "(public CAs no longer issue clientAuth); turning EKU checking off restores the traversal zone only, not "
    "the SSH tunnels, MRA or WebRTC; on an Edge you may instead keep it and have each mTLS peer turn its "
    "client-EKU check off (condition 4)"
)

# --- Assessment: who presents what, and what breaks (DOMAIN.md) --------------

# --- clientAuth cut-offs: sourced data --------------------------------------
# The public CAs' clientAuth cut-off: a certificate they issue on or after ``date`` has no clientAuth,
# so a certificate relied on for clientAuth breaks at its first renewal on or after that day (its
# expiry), not on the cut-off itself.  ``orgs`` are matched, case-insensitively, as a part of the
# organisation name (O=) of the issuer of the presented certificate or of any CA above it;
# ``key_ids`` (hex subject key identifiers of the CA's roots or intermediates) match better and are
# tried first: add them here once read from the CA's own certificates.  Every entry has a source
# and the day it was read; ``note`` says where sources disagree.  When in doubt, the earlier date
# is the safe one: a CA not in the table gets the earliest date (UNKNOWN_CA_CUTOFF), with a finding.
# ``--cutoff CA=DATE`` overrides one entry, ``--cutoff DATE`` every one.


@attrs.frozen
class CutOff:
    """One public CA's clientAuth cut-off, with where it was read."""

    ca: str  # the name ``--cutoff CA=DATE`` uses
    orgs: tuple[str, ...]
    date: str  # YYYY-MM-DD
    source: str
    read: str  # YYYY-MM-DD: the day the source was read
    note: str = ""
    key_ids: tuple[str, ...] = ()


CUTOFFS_READ = "2026-11-29"
CLIENT_AUTH_CUTOFFS: tuple[CutOff, ...] = (
    CutOff(
        "DigiCert",
        ("DigiCert",),
        "2027-03-01",
        "https://knowledge.digicert.com/alerts/sunsetting-client-authentication-eku-from-digicert-public-tls-certificates",
        CUTOFFS_READ,
        "ALERT53, modified 2026-03-03; earlier versions said 2026-05-01; this table said 2027-03-15 before",
    ),
    CutOff(
        "Sectigo",
        ("Sectigo", "USERTrust", "COMODO"),  # Sectigo's roots, old and new
        "2026-05-15",
        "https://sectigo.com/faq-client-authentication-eku-deprecation",
        CUTOFFS_READ,
        "Sectigo's FAQ says 2026-05-15; resellers report extensions (Trustico: 2026-10-31; others 2027-02-10): "
        "the FAQ's date is kept, the earlier one",
    ),
    CutOff(
        "Let's Encrypt",
        ("Let's Encrypt", "Internet Security Research Group"),  # ISRG: Let's Encrypt's roots
        "2026-02-11",
        "https://letsencrypt.org/2025/05/14/ending-tls-client-authentication/",
        CUTOFFS_READ,
        "the default classic profile; the opt-in tlsclient profile kept clientAuth until 2026-05-13",
    ),
)
# The Chrome Root Program's deadline for subscriber certificates: after it no certificate of a hierarchy Chrome
# trusts carries clientAuth, so no CA's date above can be later (DOMAIN.md, as read in November 2026;
# https://comparecheapssl.com/?p=12632 lists it beside the CAs' dates, read 2026-11-29; DigiCert's ALERT53 says
# Chrome extended its timeline).  A bound on the table, not a date the assessment uses.
CHROME_CLIENT_AUTH_END = "2027-03-15"
# A public CA not in the table: the earliest date known, never the latest.
UNKNOWN_CA_CUTOFF = min(entry.date for entry in CLIENT_AUTH_CUTOFFS)

# EKU rules an acceptor (or peer) applies to the certificate presented to it.
#   clientAuth / serverAuth: that EKU (a certificate without EKU extension is unrestricted);
#   checking-mode: clientAuth when the verifier's EKU checking mode is On; when Off the
#   client-EKU check is skipped, but serverAuth is still checked where the certificate has an EKU.
EKU_RULES = {
    "clientAuth": {True: CLIENT_AUTH, False: CLIENT_AUTH},
    "serverAuth": {True: SERVER_AUTH, False: SERVER_AUTH},
    "checking-mode": {True: CLIENT_AUTH, False: SERVER_AUTH},
}


@attrs.frozen
class CertCheck:
    """One side of a connection: who presents which certificate, and how its verifier judges it.

    ``presenter`` is ``core`` or ``edge``; ``cert`` the store it presents from
    (``client``, ``client-ssh``, ``server``); ``verifier`` whose trust decides:
    ``core``/``edge`` (that node's ``ca.pem``), ``public`` (a remote party that
    trusts the public CAs) or ``peer`` (a party whose trust list we cannot see:
    no chain check); ``eku`` a key of :data:`EKU_RULES`.  ``on_eku`` and
    ``on_trust`` are the service status when that check fails.
    """

    presenter: str
    cert: str
    verifier: str
    eku: str
    on_eku: str = "failed"
    on_trust: str = "failed"
    relies_on_client_auth: bool = False
    judge: str = ""  # who the verifier is, as a report names it (default: from ``verifier``)


@attrs.frozen
class Service:
    """One service of the assessment: its checks and the services it needs."""

    id: str
    label: str
    initiator: str
    acceptor: str
    checks: tuple[CertCheck, ...] = ()
    needs: tuple[str, ...] = ()


# The initiator presents its client certificate, the acceptor its server certificate.
SERVICES: tuple[Service, ...] = (
    Service(
        "uc-traversal-zone",
        "Unified Communications traversal zone (Core -> Edge, SIP TLS)",
        "core",
        "edge",
        checks=(
            CertCheck("core", "client", "edge", "checking-mode", relies_on_client_auth=True),
            CertCheck("edge", "server", "core", "serverAuth"),
        ),
    ),
    Service(
        "ssh-tunnels",
        "SSH tunnels, TCP 2222 (Core -> Edge)",
        "core",
        "edge",
        checks=(
            CertCheck("core", "client-ssh", "edge", "clientAuth", relies_on_client_auth=True),
            CertCheck("edge", "server", "core", "serverAuth"),
        ),
    ),
    Service("mra", "Mobile and Remote Access", "client", "edge", needs=("uc-traversal-zone", "ssh-tunnels")),
    Service("webrtc-proxy", "WebRTC proxy", "client", "edge", needs=("uc-traversal-zone", "ssh-tunnels")),
    Service(
        "edge-outbound-mtls",
        "Edge -> Webex and mTLS peers on 5061",
        "edge",
        "webex",
        # DOMAIN.md: most remote parties require clientAuth, but their rules are their own (outcome 5: the remote
        # can turn its check off), so a missing clientAuth is a risk, not a known failure; they trust the public CAs.
        checks=(
            CertCheck(
                "edge",
                "client",
                "public",
                "clientAuth",
                on_eku="at-risk",
                on_trust="at-risk",
                relies_on_client_auth=True,
                judge="a remote peer such as Webex",
            ),
        ),
    ),
    Service(
        "core-outbound-mtls",
        "Core -> CUCM (TFTP 6972) and other peers",
        "core",
        "cucm",
        # CUCM's rules and trust list are its own: a missing clientAuth is a risk, not a known failure.
        checks=(CertCheck("core", "client", "peer", "clientAuth", on_eku="at-risk", relies_on_client_auth=True),),
    ),
    Service(
        "mra-client-trust",
        "MRA clients trust the Edge's server certificate",
        "mra-clients",
        "edge",
        checks=(CertCheck("edge", "server", "public", "serverAuth", on_trust="at-risk", judge="an MRA client"),),
    ),
)

# Where each presented store's certificate lives, first file that exists wins (no SSH bundle:
# the tunnels use the store's certificate).  An X15.4 node (no client store yet) is assessed as
# the migration leaves it: each client file read from its counterpart (FileRule.counterpart).
PRESENTED_FILES = {
    "client": ("client.pem",),
    "client-ssh": ("client-ssh.pem", "client.pem"),
    "server": ("server.pem",),
}

# The X15.5 server-store option that copies a server-only certificate into the client store (DOMAIN.md).
UPLOAD_AS_CLIENT_OPTION = "upload server certificate file as client certificate"
# The fixes that still work after the public CAs' cut-off (DOMAIN.md conditions 2.1 and 4); every fix
# below is one of them or works whatever the date (trust, names, clocks, a private CA's renewal).
PRIVATE_CLIENT_CERT = (
    "install on the {presenter} a client certificate with serverAuth and clientAuth from a private CA the "
    "{verifier} trusts (after a public CA's cut-off only a private CA issues clientAuth)"
)
CONDITION_4 = (
    "keep the server-only certificate in the client store (X15.5's server-store option '"
    + UPLOAD_AS_CLIENT_OPTION
    + "') and have the peer turn its client-EKU check off: without it the peer refuses the handshake"
)
# The fix for a failed check, by kind of failure; {cert}, {verifier}, {presenter}, {store}, {date},
# {breaks}, {name}, {names} are filled in.  No fix here may fail on the day it is offered: the assessment
# never offers "renew" for a certificate relied on for clientAuth once its public CA's cut-off has passed.
ASSESS_FIXES = {
    "missing": "install the {store} certificate on the {presenter} (run precheck on it for the details)",
    "expired": "renew {cert} (and the copy in the other store if it is one)",
    "expired-after-cutoff": "a renewal of {cert} from its public CA carries no clientAuth on or after {date}: "
    + PRIVATE_CLIENT_CERT,
    "expired-after-cutoff-peer": "a renewal of {cert} from its public CA carries no clientAuth on or after {date}: "
    + CONDITION_4
    + "; or install on the {presenter} a client certificate with clientAuth from a private CA the peer trusts",
    "not-yet-valid": "check the {presenter}'s clock and {cert}'s validity dates",
    "untrusted": "add the CA that issued {cert} to the {verifier}'s ca.pem, or install a {store} certificate "
    "from a CA the {verifier} trusts",
    "untrusted-public": "use a {store} certificate from a public CA, or make sure every remote party trusts "
    "the CA that issued {cert}",
    "untrusted-public-client": "make sure every remote peer trusts the CA that issued {cert}; or use the "
    "{presenter}'s public server certificate as its client certificate (X15.5's server-store option '"
    + UPLOAD_AS_CLIENT_OPTION
    + "'): it has no clientAuth after the public CAs' cut-off, so each peer must turn its client-EKU check off",
    "eku-client": PRIVATE_CLIENT_CERT + "; turning the {verifier}'s EKU checking Off restores this traversal zone "
    "only, not the SSH tunnels, MRA or the WebRTC proxy",
    "eku-client-ssh": PRIVATE_CLIENT_CERT + "; turning EKU checking off is not a fix: "
    "the SSH tunnels always require clientAuth",
    "eku-client-peer": CONDITION_4
    + "; or install on the {presenter} a client certificate with clientAuth from a private CA the peer trusts",
    "eku-server": "install on the {presenter} a {store} certificate with the serverAuth EKU",
    "stale-ssh": "reinstall the client certificate so that the SSH identity (client-ssh.pem) is regenerated "
    "from client.pem and clientprivkey.pem",
    "cutoff": "before {breaks}, " + PRIVATE_CLIENT_CERT,
    "cutoff-peer": "before {breaks}, "
    + CONDITION_4
    + "; or install on the {presenter} a client certificate with clientAuth from a private CA the peer trusts",
    "name-mismatch": "install on the {presenter} a {store} certificate whose SAN holds {name}, or set the "
    "{verifier}'s zone TLS verify subject name to one of the certificate's names ({names})",
    "peer-address-mismatch": "install on the {presenter} a {store} certificate whose SAN holds {name} (the address "
    "the {verifier}'s traversal client zone connects to), or point the zone at one of its names ({names})",
    "peer-unseen": "pass --peer {name}=FILE with the certificate the peer presents to check it; it must carry "
    "{eku}, chain to a CA in the {verifier}'s ca.pem{named}",
    "peer-expired": "the peer renews {cert}; with the {verifier}'s EKU checking On the renewal needs clientAuth, "
    "which only a private CA issues after a public CA's cut-off",
    "peer-untrusted": "add the CA that issued {cert} to the {verifier}'s ca.pem",
    "peer-eku-client": "have the peer present a certificate with clientAuth (from a private CA once its public "
    "CA's cut-off has passed), or turn the {verifier}'s EKU checking Off: inbound SIP TLS then skips the "
    "clientAuth check (serverAuth is still checked where the certificate has an EKU)",
    "peer-eku-server": "have the peer present a certificate with serverAuth (the {verifier}'s EKU checking is Off)",
    "peer-name": "have the peer present a certificate whose SAN holds {name}, or set the zone's TLS verify subject "
    "name to one of its names ({names})",
    "peer-cutoff": "before {breaks}, have the peer move to a certificate with clientAuth from a private CA the "
    "{verifier} trusts, or turn the {verifier}'s EKU checking Off (inbound SIP TLS then skips the clientAuth check)",
    "b2b-unseen": "turn the {verifier}'s EKU checking Off: inbound SIP TLS from other organisations then skips the "
    "clientAuth check (the SSH tunnels still require the Core's clientAuth); pass --peer {name}=FILE to check one "
    "caller's certificate",
}
