"""A Redis database for the Celery broker of the deploy tests."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import redis

from tests.conftest import ci_requires_services

# A database of its own, emptied before and after, so that no other broker's messages meet these.
REDIS_URL = "redis://127.0.0.1:6379/13"


def redis_database(url: str) -> redis.Redis:
    """A client of the Redis at url; the test skips naming it when it is not reachable, or fails under CI."""
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        parts = urlsplit(url)
        message = f"redis is not reachable at {parts.hostname}:{parts.port}: {type(exc).__name__}"
        if ci_requires_services():
            pytest.fail(f"{message} (CI requires every service)")
        pytest.skip(message)
    return client


@pytest.fixture
def broker_url():
    client = redis_database(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()
