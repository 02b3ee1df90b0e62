"""Settings shared by every environment. Environment-specific modules import this.

https://docs.djangoproject.com/en/5.2/ref/settings/
"""

from __future__ import annotations

from pathlib import Path

import environ

from config.caches import cache_from_url
from config.databases import env_number

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# One environment reader; a .env file in the project is read when present.
env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

# Proxies in front of the app that append the client's address to X-Forwarded-For and set
# X-Forwarded-Proto (a load balancer: 1). 0: requests come straight from clients, whose headers
# are never trusted. https://docs.djangoproject.com/en/5.2/ref/settings/#secure-proxy-ssl-header
TRUSTED_PROXY_COUNT = env_number(env, "TRUSTED_PROXY_COUNT", 0)

# Applications
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # runserver leaves static files to WhiteNoise too: development serves them as gunicorn does.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_prometheus",
    "dbrouting",
    "gists",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Fresh read-routing state per request: a write pins only its own request to the primary.
    "dbrouting.middleware.RoutingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files from the app itself, before any other work (whitenoise.readthedocs.io).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A client's requests held to a causal token (their reads go to the primary) are limited.
    "gists.ratelimits.CausalReadLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A database that cannot be reached answers 503 + Retry-After, not a traceback.
    "gists.middleware.DatabaseUnavailableMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Databases: see config/databases.py and the environment-specific modules.
# Reads go to a usable replica, writes to the primary: see dbrouting/ and the README.
DATABASE_ROUTERS = ["dbrouting.router.PrimaryReplicaRouter"]
DBROUTING = {
    "MAX_STALENESS_SECONDS": env_number(env, "DBROUTING_MAX_STALENESS_SECONDS", 5.0, float),
    "MAX_LAG_BYTES": env_number(env, "DBROUTING_MAX_LAG_BYTES", 64 * 1024 * 1024),
    "CHECK_INTERVAL_SECONDS": env_number(env, "DBROUTING_CHECK_INTERVAL_SECONDS", 0.5, float),
    "STRATEGY": env.str("DBROUTING_STRATEGY", default="dbrouting.strategies.RoundRobin"),
    # One prober per host ("host"), or one per process ("process"); where a host's processes meet.
    "PROBE_SCOPE": env.str("DBROUTING_PROBE_SCOPE", default="host"),
    "RUNTIME_DIR": env.str("DBROUTING_RUNTIME_DIR", default=None),
    # When every replica is behind: "primary", "least_lagged" or "budget" (README); operators
    # override it at run time with `manage.py replica_policy`.
    "ALL_BEHIND_POLICY": env.str("DBROUTING_ALL_BEHIND_POLICY", default="primary"),
    "MAX_STALENESS_HARD_SECONDS": env_number(env, "DBROUTING_MAX_STALENESS_HARD_SECONDS", None, float),
    "PRIMARY_READ_BUDGET": env_number(env, "DBROUTING_PRIMARY_READ_BUDGET", 50.0, float),
    # Outside DEBUG, /metrics answers only these networks (REMOTE_ADDR: never behind a proxy)...
    "METRICS_ALLOWED_NETWORKS": env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"]),
    # ... and any client that sends "Authorization: Bearer <METRICS_TOKEN>" (Prometheus' authorization).
    "METRICS_TOKEN": env.str("METRICS_TOKEN", default=None),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: the rate limits' counters. Production shares one between processes and hosts
# (redis://host:6379/0); the default is per process. https://django-environ.readthedocs.io/en/latest/types.html#environ-env-cache-url
CACHES = {"default": cache_from_url(env.str("CACHE_URL", default="locmemcache://"))}

# Abuse limits per client address, "count/period" (s, m, h, d) or "" for none: gists/ratelimits.py.
RATELIMITS = {
    "write": env.str("RATELIMIT_WRITES", default="20/m"),  # gists created, form and API
    "login": env.str("RATELIMIT_LOGINS", default="10/m"),  # admin login attempts per address
    "login_user": env.str("RATELIMIT_LOGINS_PER_USER", default="5/m"),  # ... per user name
    "causal": env.str("RATELIMIT_CAUSAL_READS", default="300/m"),  # requests carrying a causal token
}
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)

# Passwords https://docs.djangoproject.com/en/5.2/topics/auth/passwords/
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Internationalisation
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Static files https://docs.djangoproject.com/en/5.2/howto/static-files/deployment/
# WhiteNoise serves STATIC_ROOT (what `manage.py collectstatic` writes) under gunicorn; with DEBUG,
# the apps' own folders. Production stores them compressed under hashed names (production.py).
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))

# Request bodies: the JSON API answers 413 above this size.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# Logging to the console; levels from the environment.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's own console handler (DEBUG) would print each of its lines a second time.
    "loggers": {"django": {"handlers": [], "level": "INFO"}, "django.db.backends": {"level": "INFO"}},
}
