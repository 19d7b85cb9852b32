"""The reader's second half: every readable managed file of a snapshot parsed, once, into facts.

``analyse(snapshot) -> Analysis`` turns the bytes the scanner read into the
facts the checks judge (:class:`~migrate.model.CertInfo`,
:class:`~migrate.model.KeyInfo`, whether a file's certificates form one
chain, the configuration's settings).  This is where ``cryptography`` is used,
so that the checks and the planner stay pure functions of values.
"""

from __future__ import annotations

from . import certs, policy, xconfig
from .errors import CertError
from .model import Analysis, Material, Snapshot


def analyse(snapshot: Snapshot) -> Analysis:
    """Parse every readable managed file and the configuration of ``snapshot``."""
    material = {}
    for rule in policy.FILES:
        state = snapshot.files[rule.name]
        if state.data is None:
            continue
        try:
            if rule.kind == "ca":
                material[rule.name] = Material(certs=certs.load_ca_bundle(state.data))
            elif rule.kind == "cert":
                chain = certs.load_certificates(state.data)
                material[rule.name] = Material(certs=chain, chain_problem=certs.chain_problem(chain))
            elif rule.kind == "key":
                material[rule.name] = Material(key=certs.load_private_key(state.data))
            else:
                key, chain = certs.load_bundle(state.data)
                material[rule.name] = Material(certs=chain, key=key, chain_problem=certs.chain_problem(chain))
        except CertError as exc:
            material[rule.name] = Material(error=exc)
    settings = xconfig.parse(snapshot.config.data) if snapshot.config.data is not None else ()
    return Analysis(snapshot=snapshot, material=material, settings=settings)
