"""Metrics from unmodified scripts: read from what they print and the files they write.

``ingest`` reads an experiment's sources incrementally into the store, ``query`` is
the read API shared by ``grid metrics`` and the dashboard.
"""
