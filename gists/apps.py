from django.apps import AppConfig


class GistsConfig(AppConfig):
    name = "gists"
    default_auto_field = "django.db.models.BigAutoField"
