"""``ENGINE = "dbrouting.backends.postgresql_prometheus"``: the failover engine with
django-prometheus's per-alias query and connection counters."""
