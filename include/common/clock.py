"""The one source of "now" for the core; workflows pass their own logical time where it matters."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
