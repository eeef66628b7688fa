"""The demo shop on each backend, and a shop controller's stores: the vault, the shop, its server logs."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from include.common.paths import DEFAULT_DATAMAPS_DIR
from include.common.settings import WorkflowSettings
from include.datamap.model import load_data_maps
from include.demo.shop import SHOP_CONNECTION, SHOP_CONTROLLER, seed_demo_logs, seed_shop
from include.policies.instructions import load_instruction_dir
from include.requests.gather import Stores


@pytest.fixture
def shop(store_urls):
    engine = sa.create_engine(store_urls["copy"])
    seed_shop(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def stores(demo_vault, shop, tmp_path) -> Stores:
    seed_demo_logs(tmp_path / "logs", load_instruction_dir(WorkflowSettings().instructions_dir))
    return Stores(demo_vault, SHOP_CONTROLLER, load_data_maps(DEFAULT_DATAMAPS_DIR),
                  lambda conn_id: {SHOP_CONNECTION: shop}[conn_id], tmp_path / "logs")


@pytest.fixture
def audit_verify(vault_settings, monkeypatch, capsys):
    """Runs `gdpr-admin audit verify` on the test vault: (exit status, what it printed)."""
    monkeypatch.setenv("GDPR_VAULT_URL", vault_settings.vault_url)
    monkeypatch.setenv("GDPR_KEYSTORE_URL", vault_settings.keystore_url)
    monkeypatch.setenv("GDPR_KEYRING_PATH", str(vault_settings.keyring_path))

    def run() -> tuple[int, str]:
        from include.admin.cli import main

        capsys.readouterr()
        status = main(["audit", "verify"])
        printed = capsys.readouterr()
        return status, printed.out + printed.err
    return run
