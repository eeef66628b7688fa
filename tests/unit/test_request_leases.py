"""Runs of a request workflow side by side: each request is leased to one run at a time, raced for
real on every backend; and a daily run works every open request, whatever day it was received."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from include.common.errors import InvalidInput
from include.requests.register import (
    LEASE,
    lease_requests,
    pause_request,
    register_request,
    release_lease,
    requests_to_work,
    require_lease,
    start_request,
)
from include.vault.store import Vault
from tests.helpers import instruct

AT = datetime(2026, 11, 24, 9, tzinfo=UTC)
ROUNDS = 40
RUNS = 4


@pytest.fixture
def requests(vault):
    vault.add_controller("acme", "Acme", "england-and-wales", actor="test")
    instruct(vault, "acme")
    return [register_request(vault, controller_id="acme", kind="access", received_on=date(2026, 11, 2 + n),
                             identities={"email": [f"p{n}@example.com"]}, actor="test", at=AT) for n in range(3)]


def test_a_leased_request_is_left_to_its_run_until_released_or_run_out(vault, requests):
    first, second, third = requests
    assert lease_requests(vault, [first, second], holder="dsar/run-a", at=AT) == [first, second]
    assert lease_requests(vault, requests, holder="dsar/run-b", at=AT) == [third]
    assert lease_requests(vault, [first], holder="dsar/run-a", at=AT + timedelta(hours=1)) == [first]  # renewed
    with pytest.raises(InvalidInput, match=f"request {second} is being worked on by another run"):
        require_lease(vault, second, holder="dsar/run-b", at=AT)
    release_lease(vault, second, holder="dsar/run-a")
    require_lease(vault, second, holder="dsar/run-b", at=AT)
    # run-a died holding the first: once its lease runs out, another run takes the request over.
    assert lease_requests(vault, [first], holder="dsar/run-c", at=AT + timedelta(hours=1) + LEASE) == [first]
    with pytest.raises(InvalidInput):
        require_lease(vault, first, holder="dsar/run-a", at=AT + timedelta(hours=1) + LEASE)


def test_runs_racing_for_the_same_requests_never_share_one(vault_settings, requests):
    """RUNS threads, each with its own connections, lease all requests at once, ROUNDS times: each
    request goes to exactly one run per round."""
    vaults = [Vault.open(vault_settings) for _ in range(RUNS)]
    try:
        for round_ in range(ROUNDS):
            at = AT + round_ * (LEASE + timedelta(minutes=1))  # every earlier lease has run out
            start = threading.Barrier(RUNS)
            won: dict[int, list[str]] = {}
            failed: list[BaseException] = []

            def run(n: int, at: datetime = at, start: threading.Barrier = start,
                    won: dict[int, list[str]] = won, failed: list[BaseException] = failed) -> None:
                start.wait()
                try:
                    won[n] = lease_requests(vaults[n], requests, holder=f"dsar/run-{n}", at=at)
                except BaseException as exc:  # a lost race must not fail a run: the request is just not its
                    failed.append(exc)

            threads = [threading.Thread(target=run, args=(n,)) for n in range(RUNS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not failed, f"round {round_}: {failed!r}"
            leased = [request_id for ids in won.values() for request_id in ids]
            assert sorted(leased) == sorted(requests), f"round {round_}: {won}"
    finally:
        for each in vaults:
            each.dispose()


def test_every_open_request_received_before_the_day_is_worked_but_paused_ones_wait(vault, requests):
    old = register_request(vault, controller_id="acme", kind="access", received_on=date(2026, 10, 15),
                           identities={"email": ["old@example.com"]}, actor="test", at=AT)
    start_request(vault, requests[0], subject_id=None, actor="test", at=AT)  # in progress: a run failed
    pause_request(vault, requests[1], on=date(2026, 11, 20), reason="fee", actor="test", at=AT)
    assert requests_to_work(vault, received_before=date(2026, 11, 4)) == [old, requests[0]]
    assert requests_to_work(vault, received_before=date(2026, 11, 24)) == [old, requests[0], requests[2]]
    assert requests_to_work(vault, received_before=date(2026, 11, 24), kind="erase") == []
