"""The policy tables: files, modes, owners, settings and EKU rules, as data.

Everything DOMAIN.md says about the world that the code depends on lives
here, so that a fact can be corrected in one place.  Facts the vendor only
shows in screenshots are marked *inferred*.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Collection

# The version of every JSON document a command prints (API.md); the journal has its own
# (migrate.record.FORMAT_VERSION), and so does the samples' manifest.
FORMAT_VERSION = 1

# --- Extended Key Usage -----------------------------------------------------

SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"
EKU_NAMES = {SERVER_AUTH: "serverAuth", CLIENT_AUTH: "clientAuth"}
# anyExtendedKeyUsage (RFC 5280 4.2.1.12): allows every purpose.
ANY_EKU = "2.5.29.37.0"


def eku_allows(eku: Collection[str] | None, oid: str) -> bool:
    """Whether an EKU set (None: no EKU extension, which RFC 5280 leaves unrestricted) allows ``oid``."""
    return eku is None or oid in eku or ANY_EKU in eku

# The keys Expressway uses: RSA of 2048 bits or more, or ECDSA on P-256/384/521.
SUPPORTED_KEY_ALGORITHMS = frozenset({"rsa", "ec"})
MIN_RSA_BITS = 2048
SUPPORTED_EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
EKU_NAMES_ALL = {**EKU_NAMES, ANY_EKU: "anyExtendedKeyUsage"}

# What to check when root itself is refused (EACCES/EPERM as root): shown by precheck and by apply.
ROOT_REFUSED_HINT = "root was refused: check SELinux or AppArmor, immutable attributes (lsattr), NFS root squashing"

# --- Layout -----------------------------------------------------------------

CERT_DIR = "persistent/certs"
CONFIG_FILE = "persistent/xconfiguration.txt"
STATE_DIR = "persistent/.cert-migration"
JOURNAL_NAME = "journal.json"
CONFIG_BACKUP_NAME = "xconfiguration.orig"
LOCK_NAME = "lock"
# The tool's own state is private to root: the directory 0700, its files 0600.
STATE_DIR_MODE, STATE_FILE_MODE = 0o700, 0o600
# The mode a configuration gets back on rollback when it has gone missing (it has no mode of its own).
CONFIG_FALLBACK_MODE = 0o644
DISPLACED_PREFIX = "persistent/.cert-migration-displaced-"
# A file being written is staged beside its target as ``.<name>.<token>.cert-migration.tmp``: a dot
# file whose token (16 hex digits) nobody can predict.  ``.<name>.cert-migration.tmp``, the name
# earlier versions used, is still recognised as a staging file.
TEMP_SUFFIX = ".cert-migration.tmp"
STAGING_TOKEN_HEX = 16


def staging_name(name: str, token: str) -> str:
    """The name of a file's staging copy, beside it: a dot file carrying ``token``."""
    return f".{name}.{token}{TEMP_SUFFIX}"


def is_staging_name(entry: str, name: str) -> bool:
    """Whether the directory entry ``entry`` is a staging copy of ``name`` (this version's or an earlier one's)."""
    prefix = f".{name}"
    if not (entry.startswith(prefix) and entry.endswith(TEMP_SUFFIX)):
        return False
    token = entry[len(prefix) : len(entry) - len(TEMP_SUFFIX)]
    if not token:
        return True
    return (
        len(token) == STAGING_TOKEN_HEX + 1
        and token[0] == "."
        and all(c in "0123456789abcdef" for c in token[1:])
    )


# --- Trust ------------------------------------------------------------------

# The directories from the node root down to what the migration writes (and its own state
# directory) must be real directories owned by root (or by the unprivileged user running a
# read-only command) and writable by nobody else: whoever can write a directory can swap
# what it holds.


def directory_problem(mode: int, uid: int, euid: int) -> str | None:
    """Why a directory with this mode and owner is not safe to work under; None when it is."""
    if uid not in (0, euid):
        return f"it is owned by uid {uid}, not root"
    writable = [who for who, bit in (("its group", 0o020), ("every user", 0o002)) if mode & bit]
    if writable:
        return f"it is writable by {' and '.join(writable)} (mode {mode:04o})"
    return None


# The tool's own files (journal, configuration copy, lock) must be regular files owned by root
# and private to it: anything else was not written by this tool.
def state_file_problem(kind: str, mode: int | None, uid: int | None, euid: int) -> str | None:
    """Why a file of the state directory cannot be trusted; None when it can."""
    if kind != "file":
        return f"it is a {kind}, not a regular file"
    if uid not in (0, euid):
        return f"it is owned by uid {uid}, not root"
    if mode is not None and mode & 0o077:
        return f"it is readable or writable by others (mode {mode:04o})"
    return None


# Reading limits: no managed file is loaded whole beyond these.
MAX_PEM_BYTES = 1 << 20  # 1 MiB: a key plus a long chain is a few tens of KiB
MAX_CONFIG_BYTES = 8 << 20  # 8 MiB: a real xconfiguration dump is well under 1 MiB

# The journal holds digests, ids and the plan's actions, never file contents: its size is bounded
# by construction.  At most three create-file entries, MAX_RETIRED_LINES retire-setting entries and
# one add-setting entry, each under 600 bytes plus its paths (at most two of PATH_MAX, 4096 bytes):
# about 68 * 9 KiB in the worst case, a few KiB in practice.  A journal over this is not one this
# tool wrote (tests/test_record.py writes the largest one).
MAX_JOURNAL_BYTES = 1 << 20
# A configuration that repeats the retired setting more often than this is refused (a real one
# states it once); it keeps the plan and the journal small whatever the file holds.
MAX_RETIRED_LINES = 64
# A retired setting's old value is shown (in the plan and the journal) up to this many characters.
MAX_SHOWN_VALUE = 64
# What ``rehearse NODE`` copies into memory at most: the files' sizes as listed (a sparse file
# counts in full), and the number of paths.
REHEARSE_MAX_BYTES = 64 << 20
REHEARSE_MAX_ENTRIES = 10_000

# A certificate that expires within this many days is reported.
EXPIRY_WARNING_DAYS = 30


@attrs.frozen
class FileRule:
    """One managed file of the certificate store.

    ``kind`` is what the file holds: ``ca`` (trusted CA list), ``cert``
    (leaf first, then its chain), ``key`` (one private key) or ``bundle``
    (a private key and its certificate).  ``owner`` is the name the appliance
    uses; numeric ids are always mirrored from the counterpart on disk.
    """

    name: str
    kind: str
    mode: int
    owner: str
    store: str  # "shared", "server" or "client"
    required: bool = True
    counterpart: str | None = None  # for client files: the server file copied

    @property
    def secret(self) -> bool:
        return self.kind in ("key", "bundle")


def client_mode(rule: FileRule, source_mode: int) -> int:
    """The mode a new client file gets: the policy's, and for a key no bit its counterpart does not grant.

    A copy never lets anyone read a key who could not read the original:
    ``privkey.pem`` at 0400 gives ``clientprivkey.pem`` 0400, not 0440.
    """
    return rule.mode & source_mode if rule.secret else rule.mode


# X15.4 store plus the X15.5 client store.  Modes and owners per DOMAIN.md.
FILES: tuple[FileRule, ...] = (
    FileRule("ca.pem", "ca", 0o644, "_nobody", "shared"),
    FileRule("server.pem", "cert", 0o644, "_nobody", "server"),
    FileRule("privkey.pem", "key", 0o440, "root", "server"),
    # inferred: the SSH tunnels' identity, a private key and a certificate.
    FileRule("server-ssh.pem", "bundle", 0o600, "_pfwd", "server", required=False),
    FileRule("client.pem", "cert", 0o644, "_nobody", "client", required=False, counterpart="server.pem"),
    FileRule("clientprivkey.pem", "key", 0o440, "root", "client", required=False, counterpart="privkey.pem"),
    FileRule("client-ssh.pem", "bundle", 0o600, "_pfwd", "client", required=False, counterpart="server-ssh.pem"),
)
RULES = {rule.name: rule for rule in FILES}
CA_FILE = next(rule.name for rule in FILES if rule.kind == "ca")  # ca.pem, the trust list both stores use
CLIENT_FILES: tuple[FileRule, ...] = tuple(rule for rule in FILES if rule.store == "client")


def store_files(store: str) -> tuple[str, str, str]:
    """The certificate, key and SSH bundle of an identity store (``server`` or ``client``), by name."""
    named = {rule.kind: rule.name for rule in FILES if rule.store == store}
    return named["cert"], named["key"], named["bundle"]

@attrs.frozen
class OtherFile:
    """A file or directory of the store that the migration neither reads nor writes (DOMAIN.md's table)."""

    name: str
    kind: str  # "file" or "dir"
    mode: int
    owner: str


# The rest of the store, with the technote's modes and owners: a sample node or a test fixture
# lays them out from here.
OTHER_FILE_RULES: tuple[OtherFile, ...] = (
    OtherFile("client-ca.crl", "file", 0o644, "_nobody"),
    OtherFile("policy-services.crl", "file", 0o644, "_nobody"),
    OtherFile("mtls_ca.pem", "file", 0o644, "_nobody"),
    OtherFile("client-ca.crl.default", "file", 0o644, "root"),
    OtherFile("policy-services.crl.default", "file", 0o755, "root"),
    OtherFile("crl-update.conf", "file", 0o644, "root"),
    OtherFile("generated_csr", "dir", 0o755, "_nobody"),
    OtherFile("saml", "dir", 0o755, "root"),
    OtherFile("multidomaincerts", "dir", 0o700, "root"),
)
OTHER_FILES = tuple(other.name for other in OTHER_FILE_RULES)

# --- Configuration ----------------------------------------------------------

RETIRED_SETTING = "XCP TLS Certificate CVS EnableServerEkuUpload"
CHECKING_SETTING = "SIP TLS Certificate ExtendedKeyUsage Checking Mode"
CHECKING_DEFAULT = "On"

# --- Settings the assessment reads (issue 13) ---------------------------------
# Names as the appliance prints them: RETIRED_SETTING and CHECKING_SETTING from Cisco's technote
# (https://www.cisco.com/c/en/us/support/docs/unified-communications/telepresence-video-communication-server-expressway/225693-navigate-client-eku-sunset-with.html,
# read 2026-11-29); the zone settings from an xConfiguration listing in a Cisco TAC troubleshooting
# guide (Webex Hybrid Call Service, "*c xConfiguration Zones Zone 7 TraversalServer SIP TLS Verify Mode",
# "... TraversalServer SIP TLS Verify Subject Name", "... TraversalClient Peer 1 Address",
# "... TraversalServer Collaboration Edge", "... Type", "... Name"; read 2026-11-29).  The Neighbor
# zone's names follow the same pattern (Neighbor SIP TLS Verify Mode is printed so; its Subject Name
# and Peer Address are *inferred* from the traversal zones' names).
ZONE_PREFIX = "Zones Zone"  # then the zone's number, then one of the names below
ZONE_NAME, ZONE_TYPE = "Name", "Type"
TRAVERSAL_SERVER, TRAVERSAL_CLIENT, NEIGHBOR, DNS_ZONE = "TraversalServer", "TraversalClient", "Neighbor", "DNS"
ZONE_TLS_VERIFY_MODE = "SIP TLS Verify Mode"  # after the zone type: "Neighbor SIP TLS Verify Mode"
ZONE_TLS_VERIFY_NAME = "SIP TLS Verify Subject Name"
ZONE_TRANSPORT = "SIP Transport"
ZONE_UC_EDGE = "Collaboration Edge"  # On for the Unified Communications traversal zone
ZONE_PEER_ADDRESS = "Peer {peer} Address"  # TraversalClient and Neighbor zones, peers 1 to 6
# Every setting the tool relies on: a line naming one that the parser cannot read is a finding (a
# blocker for plan and apply, which would otherwise add a second Checking Mode line).
RELIED_ON_SETTINGS = (RETIRED_SETTING, CHECKING_SETTING)
RELIED_ON_ZONE_SETTINGS = tuple(
    f"{kind} {name}"
    for kind in (TRAVERSAL_SERVER, TRAVERSAL_CLIENT, NEIGHBOR, DNS_ZONE)
    for name in (ZONE_TLS_VERIFY_MODE, ZONE_TLS_VERIFY_NAME)
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

# --- clientAuth cut-offs: sourced data (issue 13) ------------------------------------------------
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
# The Chrome Root Program's deadline for server-auth-only hierarchies: no public CA trusted by Chrome issues
# clientAuth in a hierarchy Chrome trusts after it (as restated by Certum,
# https://support.certum.eu/en/technical-news/sunsetting-the-clientauth-eku-from-certum-ssl-tls-certificates, read
# 2026-11-29; DOMAIN.md reads 2027-03-15 for subscriber certificates).  Informational: each CA's own date rules.
CHROME_SERVER_AUTH_ONLY_DEADLINE = "2026-06-15"
# A public CA not in the table: the earliest date known, never the latest.
UNKNOWN_CA_CUTOFF = min(entry.date for entry in CLIENT_AUTH_CUTOFFS)
DEFAULT_CLIENT_AUTH_CUTOFF = UNKNOWN_CA_CUTOFF  # the name earlier versions used

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
    "cutoff-peer": "before {breaks}, " + CONDITION_4
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


# --- Client identity: csr and install-client (issue 14) ---------------------
# The request ``csr`` makes for a node's client identity, and the rules ``install-client`` enforces.

# ``csr --new-key``: the key types offered, as (algorithm, size in bits, curve).
CSR_KEY_TYPES: dict[str, tuple[str, int, str | None]] = {
    "rsa:4096": ("rsa", 4096, None),
    "ec:p256": ("ec", 256, "secp256r1"),
}
CSR_DEFAULT_KEY = "rsa:4096"
# The EKUs a client identity's request asks for: the traversal zone wants clientAuth on the Core's
# client certificate, and an Edge whose checking is Off still checks serverAuth where an EKU is present.
CSR_EKUS = (SERVER_AUTH, CLIENT_AUTH)
# The key usage a request asks for, by key algorithm (RFC 5480 / RFC 8813 for EC, RFC 3279 for RSA).
CSR_KEY_USAGE: dict[str, tuple[str, ...]] = {
    "rsa": ("digital_signature", "key_encipherment"),
    "ec": ("digital_signature",),
}
CSR_SUFFIX, CSR_KEY_SUFFIX = ".csr", ".key"
CSR_FILE_MODE, CSR_KEY_MODE = 0o644, 0o400  # the request is public; the new key is its owner's alone
# How a CA operator inspects the request (FILE: the request's path).
CSR_INSPECT = "openssl req -in {file} -noout -text"

# The install's own state, beside the migration's: its journal, and the bytes each client file held
# before the install replaced it (``client.pem.previous``...), private to root.
INSTALL_JOURNAL_NAME = "install.json"
PREVIOUS_SUFFIX = ".previous"
PREVIOUS_FILE_MODE = 0o400


def previous_name(name: str) -> str:
    """The name, in the state directory, of the copy of the client file ``name`` an install replaced."""
    return f"{name}{PREVIOUS_SUFFIX}"


# What installing the server identity as the client identity (``--server-copy``) means (DOMAIN.md, condition 4).
SERVER_COPY_CONSEQUENCE = (
    "the client store then holds the server certificate, which has no clientAuth: whenever this node initiates "
    "mTLS the remote must turn its client-EKU check off or the handshake fails; on a Core the Edge refuses the "
    "SSH tunnels (TCP 2222) whatever its checking mode, so MRA and the WebRTC proxy fail"
)
