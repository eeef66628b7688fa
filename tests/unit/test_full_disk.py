"""A disk that fills up while an access package is written: the run fails loudly, leaves no half-written
package and no completed request, and the next run delivers."""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.demo.shop import SHOP_CONTROLLER
from include.requests.pipeline import RequestSettings, fulfil
from include.requests.register import get_request, register_request
from tests.faults import tiny_filesystem
from tests.helpers import client_in_both

AT = datetime(2026, 11, 24, 9, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_full_disk_while_writing_a_package_fails_loudly_and_leaves_nothing_half_done(stores, tmp_path):
    vault, email = stores.vault, client_in_both()
    request_id = register_request(vault, controller_id=SHOP_CONTROLLER, kind="access", received_on=AT.date(),
                                  identities={"email": [email]}, actor="test", at=AT)
    outbox = tmp_path / "outbox"
    with tiny_filesystem(outbox, "16k"):
        settings = RequestSettings(work_dir=tmp_path / "work", outbox_dir=outbox)
        with pytest.raises(OSError) as full:
            fulfil(vault, lambda _: stores, request_id, settings, on=AT.date(), actor="test", at=AT)
        assert full.value.errno == errno.ENOSPC and f"cannot write {outbox / SHOP_CONTROLLER}" in str(full.value)
        assert not [p for p in outbox.rglob("*") if p.is_file()]  # no half-written package, no temporary
        assert get_request(vault, request_id).status == "in_progress"  # not completed without a package
        assert list((tmp_path / "work" / request_id).glob("store-*.bin"))  # what was searched is kept
    delivered = fulfil(vault, lambda _: stores, request_id, RequestSettings(work_dir=tmp_path / "work",
                                                                          outbox_dir=outbox), on=AT.date(),
                       actor="test", at=AT)
    assert get_request(vault, request_id).status == "completed" and Path(delivered["package"]).stat().st_size > 16_384
