"""Demo data: gists scattered around a few cities, created over the last 30 days."""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from gists.models import Gist, new_gist_id

CITIES = [
    ("Paris", 48.8566, 2.3522),
    ("New York", 40.7128, -74.0060),
    ("Tokyo", 35.6762, 139.6503),
    ("São Paulo", -23.5505, -46.6333),
    ("Nairobi", -1.2921, 36.8219),
    ("Sydney", -33.8688, 151.2093),
]
WORDS = [
    "coffee",
    "view",
    "bench",
    "mural",
    "market",
    "bridge",
    "bakery",
    "park",
    "rooftop",
    "bookshop",
    "jazz",
    "tram",
    "garden",
]


class Command(BaseCommand):
    help = "Insert demo gists around a few cities (skipped when gists exist, unless --force)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=10_000, help="how many gists (default 10000)")
        parser.add_argument("--force", action="store_true", help="insert even when gists exist")
        parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable data")
        parser.add_argument("--batch-size", type=int, default=2_000)

    def handle(self, *args: Any, count: int, force: bool, seed: int | None, batch_size: int, **opts: Any) -> None:
        if count < 0 or batch_size < 1:
            raise CommandError("--count must be >= 0 and --batch-size >= 1")
        if not force and Gist.objects.using("default").exists():
            self.stdout.write("Gists already present; nothing seeded (use --force to add more).")
            return
        rng = random.Random(seed)
        now = timezone.now()
        done = 0
        while done < count:
            size = min(batch_size, count - done)
            with transaction.atomic(using="default"):
                Gist.objects.using("default").bulk_create(self._gist(rng, now) for _ in range(size))
            done += size
            self.stdout.write(f"seeded {done}/{count}", ending="\r" if done < count else "\n")
            self.stdout.flush()
        self.stdout.write(self.style.SUCCESS(f"Seeded {count} gists around {len(CITIES)} cities."))

    @staticmethod
    def _gist(rng: random.Random, now: Any) -> Gist:
        city, lat, lng = rng.choice(CITIES)
        # Within about 20 km of the centre, denser near it.
        distance_km = abs(rng.gauss(0, 7))
        bearing = rng.uniform(0, 2 * math.pi)
        dlat = distance_km / 111.32 * math.cos(bearing)
        dlng = distance_km / (111.32 * math.cos(math.radians(lat))) * math.sin(bearing)
        word = rng.choice(WORDS)
        return Gist(
            gist_id=new_gist_id(),
            title=f"{word.capitalize()} in {city}",
            content=f"A good {word} spot, {distance_km:.1f} km from the centre of {city}.",
            latitude=max(-90.0, min(90.0, lat + dlat)),
            longitude=((lng + dlng + 180.0) % 360.0) - 180.0,
            created_at=now - timedelta(seconds=rng.uniform(0, 30 * 86400)),
        )
