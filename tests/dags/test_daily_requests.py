"""The daily run of `dsar_fulfilment` leaves nothing behind: an access request whose own run never
happened (or failed) is worked by the next daily run, whatever day it was received."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from include.demo.shop import SHOP_CONTROLLER
from include.requests.register import get_request, register_request
from include.vault.store import Vault
from tests.dags.conftest import task_states
from tests.helpers import client_in_both

RUN_DAY = datetime(2026, 11, 24, 10, tzinfo=UTC)
EMPTY_FORM = {"controller": None, "email": None, "phone": None, "customer_number": None, "received_on": None}


@pytest.mark.airflow
def test_a_request_registered_20_days_ago_that_no_run_worked_is_worked_by_the_next_daily_run(dagbag, shop_world):
    with Vault.open(shop_world) as vault:
        request_id = register_request(vault, controller_id=SHOP_CONTROLLER, kind="access",
                                      received_on=date(2026, 11, 4), identities={"email": [client_in_both()]},
                                      actor="test", at=datetime(2026, 11, 4, 12, tzinfo=UTC))
    run = dagbag.get_dag("dsar_fulfilment").test(logical_date=RUN_DAY, run_conf=EMPTY_FORM)
    assert run.state == "success", task_states(run.run_id)
    with Vault.open(shop_world) as vault:
        request = get_request(vault, request_id)
    assert request.status == "completed" and request.package
