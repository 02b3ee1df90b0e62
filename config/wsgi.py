"""WSGI entry point (gunicorn config.wsgi): production settings by default (config/startup.py)."""

from django.core.wsgi import get_wsgi_application

from config.startup import application as load

application = load(get_wsgi_application)
