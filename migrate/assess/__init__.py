"""Will it still work after the upgrade?  The Core/Edge EKU readiness assessment.

``assess(core, edge, public_cas=..., now=...) -> Assessment`` is a pure function
of two :class:`~migrate.checks.Analysis` values, the list of CAs that count as
public, and the moment to judge at: no I/O (the CLI reads the nodes and the
public CA list).

The connections are data (:data:`migrate.policy.SERVICES`): for each service,
which certificate each side presents (the initiator its *client* certificate,
the acceptor its *server* certificate), whose trust judges it, and which EKU
rule applies (:data:`migrate.policy.EKU_RULES`).  An X15.4 node is assessed as
the migration will leave it: its client store a copy of its server store.

How a certificate is judged, with ``cryptography.x509.verification``:

1. Its validity dates against ``now`` (an expired certificate fails everywhere).
2. The chain, with a :class:`ClientVerifier` whose extension policies accept any
   EKU (``ExtensionPolicy.may_be_present(ExtendedKeyUsage, AGNOSTIC, None)``),
   against the verifier's own ``ca.pem`` (or the public CA list).  A failure here
   is a trust failure, reported as such.
3. The EKU, by verifying again with an EKU validator callback in both extension
   policies (leaf and CAs) that applies the rule.  A ClientVerifier's built-in EKU
   check (clientAuth, always) cannot express the checking mode Off, where the
   client-EKU check is skipped but serverAuth is still checked where the
   certificate carries an EKU: hence the callback, which expresses On, Off and the
   SSH tunnels' "clientAuth always" alike.  Running the two passes separately tells
   a trust failure from an EKU failure without parsing error messages.

A ``peer`` verifier (CUCM: its trust list is not ours to see) gets no chain check;
its EKU rule is applied to the parsed certificate (``CertInfo.allows``).

The rooms, one job each: ``_results`` (the values it answers with: a
service's verdict, a node as assessed, the whole assessment), ``_nodes`` (what
each node presents and how it checks EKUs), ``_chain`` (chain verification with
``cryptography.x509.verification``, and a public CA's clientAuth cut-off) and
``_services`` (each service judged, and :func:`assess` itself).
"""

from __future__ import annotations

from ._chain import client_auth_cutoff, eku_allows
from ._nodes import node_view
from ._results import (
    ACTIVE,
    AT_RISK,
    FAILED,
    FORMAT_VERSION,
    ROLES,
    Assessment,
    NodeView,
    Presented,
    ServiceResult,
)
from ._services import assess

__all__ = [
    "ACTIVE",
    "AT_RISK",
    "FAILED",
    "FORMAT_VERSION",
    "ROLES",
    "Assessment",
    "NodeView",
    "Presented",
    "ServiceResult",
    "assess",
    "client_auth_cutoff",
    "eku_allows",
    "node_view",
]
