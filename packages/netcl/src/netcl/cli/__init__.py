"""The ``netcl`` command: ``netcl devices``, ``netcl train``, ``netcl bench`` (see ``main``)."""
