"""ASGI entry point (uvicorn config.asgi:application): production settings by default (config/startup.py)."""

from django.core.asgi import get_asgi_application

from config.startup import application as load

application = load(get_asgi_application)
