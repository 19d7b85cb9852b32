"""The test kit: what rehearsals, this project's tests and users' own QA pipelines build on.

- :mod:`~migrate.testing.factory`: X15.4 nodes from parameters, with real certificates from test CAs;
- :mod:`~migrate.testing.pki`: those test CAs, identities, CRLs and CSRs, in memory;
- :mod:`~migrate.testing.faults`: the fault injector (fail, cut the power or SIGKILL at call N);
- :mod:`~migrate.testing.tree`: a node's tree as a value (read, write, compare);
- :mod:`~migrate.testing.samples`: the bundled sample nodes;
- :mod:`~migrate.testing.rehearsal`: the whole cycle, and its crash rehearsal, in pyfakefs;
- :mod:`~migrate.testing.pytest_plugin`: the fixtures (``x154_node``, ``make_x154_node``, ``fault_injector``);
- private (``_``) rooms: ``_crash`` (the crash rehearsal), ``_forking`` (children that report back), ``_fakefs``
  (the fake file system as root), ``_faster`` (pyfakefs made cheaper for the tool's calls), ``_snapshot``
  (trees read from pyfakefs's objects, and its whole state kept and put back), ``_command`` (the
  ``rehearse`` and ``sample`` commands of the command line).

The engine never imports this package (``tests/test_layers.py`` holds it to that).
"""
