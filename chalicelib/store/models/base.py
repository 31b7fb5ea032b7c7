"""What every model shares: the region, and the table names, of the stage's settings."""

from __future__ import annotations

from chalicelib.config import get_settings

settings = get_settings()


class TableMeta:
    region = settings.region
