"""The policy tables: files, modes, owners, settings and EKU rules, as data.

Everything DOMAIN.md says about the world that the code depends on lives
here, so that a fact can be corrected in one place.  Facts the vendor only
shows in screenshots are marked *inferred*.
"""

from __future__ import annotations

import attrs

# --- Extended Key Usage -----------------------------------------------------

SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"
EKU_NAMES = {SERVER_AUTH: "serverAuth", CLIENT_AUTH: "clientAuth"}

# --- Layout -----------------------------------------------------------------

CERT_DIR = "persistent/certs"
CONFIG_FILE = "persistent/xconfiguration.txt"
STATE_DIR = "persistent/.cert-migration"
JOURNAL_NAME = "journal.json"
CONFIG_BACKUP_NAME = "xconfiguration.orig"
LOCK_NAME = "lock"
DISPLACED_PREFIX = "persistent/.cert-migration-displaced-"
# A file being written is staged under this name in its final directory.
TEMP_SUFFIX = ".cert-migration.tmp"


def staging_path(path):
    """The staging name of ``path`` (a ``pathlib.Path``): a dot file beside it."""
    return path.with_name(f".{path.name}{TEMP_SUFFIX}")


# Reading limits: no managed file is loaded whole beyond these.
MAX_PEM_BYTES = 1 << 20  # 1 MiB: a key plus a long chain is a few tens of KiB
MAX_CONFIG_BYTES = 8 << 20  # 8 MiB: a real xconfiguration dump is well under 1 MiB

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
CLIENT_FILES: tuple[FileRule, ...] = tuple(rule for rule in FILES if rule.store == "client")

# Files of the store the migration neither reads nor writes, for the record.
OTHER_FILES = (
    "client-ca.crl",
    "policy-services.crl",
    "mtls_ca.pem",
    "client-ca.crl.default",
    "policy-services.crl.default",
    "crl-update.conf",
    "generated_csr",
    "saml",
    "multidomaincerts",
)

# --- Configuration ----------------------------------------------------------

RETIRED_SETTING = "XCP TLS Certificate CVS EnableServerEkuUpload"
CHECKING_SETTING = "SIP TLS Certificate ExtendedKeyUsage Checking Mode"
CHECKING_DEFAULT = "On"

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
)
