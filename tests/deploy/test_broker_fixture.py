"""The deploy tests' Redis: missing, it skips naming the service on a developer's machine and fails in CI."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import redis_database

OUTCOMES = (pytest.fail.Exception, pytest.skip.Exception)
NOTHING_LISTENS = "redis://127.0.0.1:1/13"  # port 1: Redis as a test meets it when the server is stopped


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_redis_fails_in_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(OUTCOMES) as raised:
        redis_database(NOTHING_LISTENS)
    assert raised.type is outcome
    assert raised.value.msg.startswith("redis is not reachable at 127.0.0.1:1: ConnectionError")
