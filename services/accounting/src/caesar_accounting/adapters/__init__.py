"""MongoDB repositories of the accounting database (``<prefix>_accounting``)."""
