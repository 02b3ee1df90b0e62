"""gunicorn settings: ``gunicorn -c config/gunicorn.conf.py config.wsgi``.

Prometheus metrics from several workers: set PROMETHEUS_MULTIPROC_DIR to an empty folder that
the workers can write (emptied at each start); /metrics then sums every live worker's counters.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
accesslog = "-"


def on_starting(server):
    # The settings, read once here: a configuration error stops gunicorn with one line before any
    # worker starts (each worker would print it, and gunicorn would halt with a traceback).
    from config.startup import check_settings

    check_settings()
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):  # stale files from a previous run would be summed too
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
