"""What the install tests expect of a node, written out here rather than taken from migrate.policy.

Condition 2 of DOMAIN.md, after the upgrade: a Core and an Edge on X15.5,
each with a public, server-only certificate that the upgrade copied into its
client store; both ``ca.pem`` trust the public CA and the private CA1.  The
fix: a client certificate from CA1 with serverAuth and clientAuth on the Core.
"""

from __future__ import annotations

import functools
import json
import os

import attrs

from migrate.install import InstallRequest
from migrate.testing.factory import NodeSpec, issue, make_ca, node_tree
from migrate.testing.tree import Tree

CERTS = "persistent/certs"
STATE = "persistent/.cert-migration"
INSTALL_JOURNAL = f"{STATE}/install.json"
LOCK = f"{STATE}/lock"
MIGRATION_JOURNAL = f"{STATE}/journal.json"
PREVIOUS = {name: f"{STATE}/{name}.previous" for name in ("client.pem", "clientprivkey.pem", "client-ssh.pem")}
# client file -> (policy mode, its counterpart)
CLIENT = {
    "client.pem": (0o644, "server.pem"),
    "clientprivkey.pem": (0o440, "privkey.pem"),
    "client-ssh.pem": (0o600, "server-ssh.pem"),
}
NOBODY, PFWD = 65534, 1001
CLIENT_AUTH, SERVER_AUTH = "1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1"
INPUT = "/in"  # where the tests put the files an administrator would pass (a real test uses tmp_path)


@functools.cache
def cas():
    """The public CA (CA2) and the private CA (CA1) of the whole session."""
    return make_ca("Example Public CA2", public=True), make_ca("Example Internal CA1")


@functools.cache
def condition2(role: str = "core") -> Tree:
    """An X15.5 node of condition 2: public, server-only certificate in both stores; ca.pem trusts CA2 and CA1."""
    public, private = cas()
    identity = issue(public, f"{role}.example.com", eku=["serverAuth"])
    return node_tree(NodeSpec(role=role, identity=identity, trusted=(public, private), client="migrated"))


@functools.cache
def core_client(key_type: str = "ec256", eku: tuple[str, ...] | None = ("serverAuth", "clientAuth")):
    """A client identity for the Core from CA1 (the fix), of the key type and EKUs asked."""
    return issue(cas()[1], "core.example.com", eku=None if eku is None else list(eku), key_type=key_type)


def write_inputs(where: str, cert: bytes, key: bytes | None = None, chain: bytes | None = None) -> InstallRequest:
    """Write the administrator's files under ``where`` and the request naming them (pyfakefs or a real disk)."""
    os.makedirs(where, exist_ok=True)
    paths = {}
    for name, data in (("cert.pem", cert), ("key.pem", key), ("chain.pem", chain)):
        if data is not None:
            paths[name] = f"{where}/{name}"
            with open(paths[name], "wb") as out:
                out.write(data)
            if name == "key.pem":  # an administrator's key is theirs alone (install-key-unsafe otherwise)
                os.chmod(paths[name], 0o600)
    return InstallRequest(cert=paths["cert.pem"], key=paths.get("key.pem"), chain=paths.get("chain.pem"))


def without_times(tree: Tree) -> Tree:
    """``tree`` with the install journal's times, the migration journal's bytes and the lock's pid blanked."""
    out = dict(tree)
    if INSTALL_JOURNAL in out:
        doc = json.loads(out[INSTALL_JOURNAL].data)
        doc.pop("started", None)
        doc.pop("finished", None)
        out[INSTALL_JOURNAL] = attrs.evolve(out[INSTALL_JOURNAL], data=json.dumps(doc, sort_keys=True).encode())
    for rel in (LOCK, MIGRATION_JOURNAL):
        if rel in out:
            out[rel] = attrs.evolve(out[rel], data=b"")
    return out
