"""gunicorn settings: ``gunicorn -c config/gunicorn.conf.py config.wsgi``.

Prometheus metrics from several workers: set PROMETHEUS_MULTIPROC_DIR to an empty folder that
the workers can write (emptied at each start); /metrics then sums every live worker's counters.
"""

import os
import subprocess
import sys

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
accesslog = "-"


def on_starting(server):
    # The settings, read once before any worker starts, in a process of their own (the master stays
    # free of Django, so that HUP's new workers read the settings anew): a configuration error
    # stops gunicorn with one line, instead of each worker printing it and gunicorn a traceback.
    check = [sys.executable, "-c", "from config.startup import check_settings; check_settings()"]
    if subprocess.run(check, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))).returncode != 0:
        sys.exit(4)  # config.startup.APP_LOAD_ERROR (this file imports nothing of the project's)
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
