"""The ``nexus`` command-line program: one module per command group."""
