"""Validation of everything a client sends: the gist form and the query parameters."""

from __future__ import annotations

from django import forms

from .models import Gist

MAX_RADIUS_M = 20_000_000.0  # about half the Earth's circumference: beyond it, everything matches
DEFAULT_RADIUS_M = 5_000.0
MIN_RADIUS_M = 1.0
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


# Coordinates closer to zero than this are zero: far below any meaningful precision (1e-12
# degrees is a micrometre), and subnormal floats underflow in PostgreSQL's trigonometry.
TINY_DEGREES = 1e-12


def snap_to_zero(value: float | None) -> float | None:
    return 0.0 if value is not None and abs(value) < TINY_DEGREES else value


class GistForm(forms.ModelForm):
    """Creation of a gist; Django's FloatField rejects NaN and infinities, the model's
    validators the out-of-range coordinates, CharField the NUL characters."""

    class Meta:
        model = Gist
        fields = ["title", "content", "latitude", "longitude"]
        widgets = {
            "content": forms.Textarea(attrs={"rows": 6}),
            "latitude": forms.NumberInput(attrs={"step": "any", "min": -90, "max": 90}),
            "longitude": forms.NumberInput(attrs={"step": "any", "min": -180, "max": 180}),
        }

    def clean_latitude(self) -> float | None:
        return snap_to_zero(self.cleaned_data.get("latitude"))

    def clean_longitude(self) -> float | None:
        return snap_to_zero(self.cleaned_data.get("longitude"))

    def validate_unique(self) -> None:
        """Skipped: the form's validators already enforce what the check constraints do, and
        gist_id is generated. Django would otherwise query the primary once per constraint."""


class NearbyForm(forms.Form):
    lat = forms.FloatField(min_value=-90, max_value=90, label="Latitude")
    lng = forms.FloatField(min_value=-180, max_value=180, label="Longitude")
    radius_m = forms.FloatField(required=False, max_value=MAX_RADIUS_M, label="Radius (m)")
    limit = forms.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT)

    def clean_lat(self) -> float | None:
        return snap_to_zero(self.cleaned_data.get("lat"))

    def clean_lng(self) -> float | None:
        return snap_to_zero(self.cleaned_data.get("lng"))

    def clean_radius_m(self) -> float:
        value = self.cleaned_data.get("radius_m")
        if value is None:
            return DEFAULT_RADIUS_M
        # Below a metre means nothing for places on Earth.
        if value < MIN_RADIUS_M:
            raise forms.ValidationError(f"Ensure this value is at least {MIN_RADIUS_M:g}.", code="min_value")
        return float(value)

    def clean_limit(self) -> int:
        value = self.cleaned_data.get("limit")
        return DEFAULT_LIMIT if value is None else int(value)


class PageForm(forms.Form):
    cursor = forms.CharField(required=False, max_length=200)
    page_size = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)

    def clean_page_size(self) -> int:
        value = self.cleaned_data.get("page_size")
        return DEFAULT_PAGE_SIZE if value is None else int(value)
