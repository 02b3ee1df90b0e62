"""Settings modules: ``local`` (development defaults), ``production``, ``test``."""
