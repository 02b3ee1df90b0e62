"""Production settings: secrets and databases come from the environment, without defaults."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from config.databases import databases_from_env, env_number

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure"):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random value of at least 50 characters in production "
        "(python -c 'from django.core.management.utils import get_random_secret_key as k; print(k())')"
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required in production: the site's host names, comma-separated")

DATABASES = databases_from_env(env, default_url=None, default_replica_urls=None)

# /metrics: nobody unless METRICS_TOKEN (a bearer token for Prometheus) or METRICS_ALLOWED_NETWORKS
# (addresses that reach the app directly, never through a proxy) says who may scrape.
DBROUTING = {
    **DBROUTING,  # noqa: F405
    "METRICS_ALLOWED_NETWORKS": env.list("METRICS_ALLOWED_NETWORKS", default=[]),
}

# Static files: gzip-compressed copies and content-hashed names, which WhiteNoise serves with a
# ten-year Cache-Control (immutable). `manage.py collectstatic --noinput` writes them at deploy.
# https://whitenoise.readthedocs.io/en/stable/django.html
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# HTTPS https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
if TRUSTED_PROXY_COUNT < 0:  # noqa: F405
    raise ImproperlyConfigured(f"TRUSTED_PROXY_COUNT must be 0 or more, not {TRUSTED_PROXY_COUNT}")  # noqa: F405
# X-Forwarded-Proto says a request came over TLS only when a declared proxy set it.
if TRUSTED_PROXY_COUNT:  # noqa: F405
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]  # Prometheus scrapes each host directly, over HTTP
# Browsers keep to HTTPS for a year, subdomains included; "preload" consents to browsers' lists
# (https://hstspreload.org: a separate, manual step). Set SECURE_HSTS_SECONDS=0 before first deploy
# on a domain whose subdomains are not all HTTPS yet.
SECURE_HSTS_SECONDS = env_number(env, "SECURE_HSTS_SECONDS", 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
