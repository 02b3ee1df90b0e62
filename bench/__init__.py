"""Benchmarks of the router: ``make bench`` runs them all (see ``bench/run_all.py``)."""
