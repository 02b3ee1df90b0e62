"""Lag-aware read-replica routing for Django (see README)."""
