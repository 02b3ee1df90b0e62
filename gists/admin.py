from django.contrib import admin

from .models import Gist


@admin.register(Gist)
class GistAdmin(admin.ModelAdmin):
    list_display = ("title", "gist_id", "latitude", "longitude", "created_at")
    list_display_links = ("title",)
    search_fields = ("gist_id__exact", "title")
    list_filter = ("created_at",)
    date_hierarchy = "created_at"
    readonly_fields = ("id", "gist_id", "created_at")
    ordering = ("-created_at", "-id")
    list_per_page = 50
    # A COUNT(*) over every row on each changelist page is the cost Django's docs warn about.
    show_full_result_count = False
