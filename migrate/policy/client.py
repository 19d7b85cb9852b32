"""The client identity: the request ``csr`` makes and the state ``install-client`` keeps; part of
:mod:`migrate.policy`.
"""

from __future__ import annotations

from . import (  # the store's facts, defined first in the package
    CLIENT_AUTH,
    SERVER_AUTH,
)

# --- Client identity: csr and install-client ---------------------------------
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
