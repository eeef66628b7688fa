"""`kek_rotation` through Airflow (dag.test): the demo vault's data keys and a package in the outbox
move to a new KEK, the old KEK is destroyed, and everything still opens."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from include.crypto.keyring import load_keyring
from include.crypto.sealing import open_sealed, sealed_kek_version
from include.demo.shop import SHOP_CONTROLLER
from include.vault.store import Vault
from tests.dags.conftest import task_states
from tests.helpers import client_in_both

RUN_DAY = datetime(2026, 11, 29, 3, 30, tzinfo=UTC)


@pytest.mark.airflow
def test_the_weekly_rotation_moves_every_key_and_package_and_destroys_the_old_kek(dagbag, shop_world, tmp_path):
    access = dagbag.get_dag("dsar_fulfilment").test(logical_date=RUN_DAY.replace(hour=1), run_conf={
        "controller": SHOP_CONTROLLER, "email": client_in_both(), "phone": None, "customer_number": None,
        "received_on": None})
    assert access.state == "success", task_states(access.run_id)
    [package] = list((tmp_path / "outbox").rglob("*.gdprpkg"))
    assert sealed_kek_version(package.read_bytes()) == 1

    run = dagbag.get_dag("kek_rotation").test(logical_date=RUN_DAY)
    assert run.state == "success", task_states(run.run_id)
    keyring = load_keyring(shop_world.keyring_path)
    assert set(keyring.keks) == {2} and sealed_kek_version(package.read_bytes()) == 2
    with Vault.open(shop_world) as vault:
        assert vault.keystore.kek_versions_in_use() == {2}
        assert open_sealed(package.read_bytes(), keyring=vault.keyring)["manifest.json"]
        assert vault.find_subjects(SHOP_CONTROLLER, "email", client_in_both())
