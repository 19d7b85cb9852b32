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
    return len(token) == STAGING_TOKEN_HEX + 1 and token[0] == "." and all(c in "0123456789abcdef" for c in token[1:])


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

# --- Settings the assessment reads -------------------------------------------
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


# The rest of the facts, in rooms of their own; every name is reachable as policy.NAME.
from .client import (  # noqa: E402, I001 - after the facts they build on; one name a line
    CSR_DEFAULT_KEY as CSR_DEFAULT_KEY,
    CSR_EKUS as CSR_EKUS,
    CSR_FILE_MODE as CSR_FILE_MODE,
    CSR_INSPECT as CSR_INSPECT,
    CSR_KEY_MODE as CSR_KEY_MODE,
    CSR_KEY_SUFFIX as CSR_KEY_SUFFIX,
    CSR_KEY_TYPES as CSR_KEY_TYPES,
    CSR_KEY_USAGE as CSR_KEY_USAGE,
    CSR_SUFFIX as CSR_SUFFIX,
    INSTALL_JOURNAL_NAME as INSTALL_JOURNAL_NAME,
    PREVIOUS_FILE_MODE as PREVIOUS_FILE_MODE,
    PREVIOUS_SUFFIX as PREVIOUS_SUFFIX,
    SERVER_COPY_CONSEQUENCE as SERVER_COPY_CONSEQUENCE,
    previous_name as previous_name,
)
from .services import (  # noqa: E402 - after the facts they build on
    ASSESS_FIXES as ASSESS_FIXES,
    CHROME_CLIENT_AUTH_END as CHROME_CLIENT_AUTH_END,
    CLIENT_AUTH_CUTOFFS as CLIENT_AUTH_CUTOFFS,
    CONDITION_4 as CONDITION_4,
    CUTOFFS_READ as CUTOFFS_READ,
    EKU_RULES as EKU_RULES,
    NO_CLIENT_AUTH_CONSEQUENCE as NO_CLIENT_AUTH_CONSEQUENCE,
    NO_CLIENT_AUTH_CONSEQUENCE_X155 as NO_CLIENT_AUTH_CONSEQUENCE_X155,
    NO_CLIENT_AUTH_FIX as NO_CLIENT_AUTH_FIX,
    NO_CLIENT_AUTH_FIX_X155 as NO_CLIENT_AUTH_FIX_X155,
    PRESENTED_FILES as PRESENTED_FILES,
    PRIVATE_CLIENT_CERT as PRIVATE_CLIENT_CERT,
    SERVICES as SERVICES,
    UNKNOWN_CA_CUTOFF as UNKNOWN_CA_CUTOFF,
    UPLOAD_AS_CLIENT_OPTION as UPLOAD_AS_CLIENT_OPTION,
    CertCheck as CertCheck,
    CutOff as CutOff,
    Service as Service,
)
