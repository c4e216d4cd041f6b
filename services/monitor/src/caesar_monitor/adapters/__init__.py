"""MongoDB repositories of the monitor's own database (``<prefix>_monitor``)."""
