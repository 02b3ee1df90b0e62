from __future__ import annotations

from django_prometheus.db.backends.postgresql.base import DatabaseWrapper as PrometheusWrapper

from dbrouting.backends.postgresql.base import FailoverMixin


class DatabaseWrapper(FailoverMixin, PrometheusWrapper):  # type: ignore[misc]
    pass
