"""The suite's own promise: in CI (any CI value but empty, false, 0 or no) a service that is not there
fails the run, naming it; on a developer's machine its tests skip, saying why."""

from __future__ import annotations

import pytest

from tests import conftest
from tests.conftest import ci_requires_services, server_databases, service_missing

# Either outcome is caught, so that a skip where a failure is due fails this test instead of skipping it.
OUTCOMES = (pytest.fail.Exception, pytest.skip.Exception)


@pytest.mark.parametrize("ci", ["true", "1", "yes", "TRUE", "on", "github-actions"])
def test_a_missing_service_fails_in_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    assert ci_requires_services()
    with pytest.raises(OUTCOMES) as outcome:
        service_missing("postgresql", "ConnectionRefused")
    assert outcome.type is pytest.fail.Exception
    assert outcome.value.msg == ("postgresql is not reachable at 127.0.0.1:5432: ConnectionRefused "
                                 "(CI requires every service)")


@pytest.mark.parametrize("ci", [None, "", "false", "0", "no", "False", " NO "])
def test_a_missing_service_skips_outside_ci(monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    assert not ci_requires_services()
    with pytest.raises(OUTCOMES) as outcome:
        service_missing("mariadb", "down")
    assert outcome.type is pytest.skip.Exception
    assert outcome.value.msg == "mariadb is not reachable at 127.0.0.1:3306: down"


def test_a_stopped_postgresql_fails_a_ci_run_naming_the_service(monkeypatch):
    # Nothing listens on port 1: the server as a test meets it when PostgreSQL is stopped.
    monkeypatch.setitem(conftest.SERVERS, "postgresql", "postgresql+psycopg2://postgres@127.0.0.1:1/{db}")
    monkeypatch.setattr(conftest, "_servers", {})
    monkeypatch.setenv("CI", "1")
    with pytest.raises(OUTCOMES) as outcome:
        server_databases("postgresql")
    assert outcome.type is pytest.fail.Exception
    assert outcome.value.msg.startswith("postgresql is not reachable at 127.0.0.1:1: OperationalError: ")
    assert outcome.value.msg.endswith("(CI requires every service)")
