"""Shared pieces of the benchmarks: the machine, vault set-up, synthetic records, printing."""

from __future__ import annotations

import os
import platform
import resource
import sqlite3
import ssl
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from include.common.settings import VaultSettings
from include.crypto.keyring import create_keyring
from include.policies.instructions import instructions_in_code
from include.vault.instructions import record_instructions
from include.vault.store import NewRecord, Vault

CONTROLLER = "bench"
ACTOR = "bench"

_WORDS = ("please", "call", "me", "about", "the", "quote", "for", "our", "office", "move", "next",
          "week", "thanks", "regarding", "invoice", "and", "delivery", "options", "in", "Leeds")


# -- printing ----------------------------------------------------------------------------------

def out(line: str = "") -> None:
    print(line, flush=True)


def progress(line: str) -> None:
    """Progress goes to stderr, so stdout holds only the figures."""
    print(f"  .. {line}", file=sys.stderr, flush=True)


def heading(title: str) -> None:
    out()
    out(title)
    out("-" * len(title))


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the machine -------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def machine_lines() -> list[str]:
    import cryptography
    import sqlalchemy

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        from cryptography.hazmat.backends.openssl.backend import backend
        openssl = backend.openssl_version_text()
    except Exception:  # noqa: BLE001 - informative only
        openssl = ssl.OPENSSL_VERSION
    return [
        f"nproc            : {usable} usable (os.cpu_count() = {os.cpu_count()})",
        f"cpu              : {_cpu_model()}",
        f"memory           : {_mem_total()}",
        f"python           : {platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        f"platform         : {platform.platform()}",
        f"cryptography     : {cryptography.__version__} ({openssl})",
        f"sqlalchemy       : {sqlalchemy.__version__}",
        f"sqlite           : {sqlite3.sqlite_version}",
    ]


# -- vaults ------------------------------------------------------------------------------------

def sqlite_settings(directory: Path) -> VaultSettings:
    """A vault file in directory, its keyring in directory/keyring, data keys beside the keyring."""
    directory.mkdir(parents=True, exist_ok=True)
    keyring_path = directory / "keyring" / "keyring.json"
    create_keyring(keyring_path)
    return VaultSettings(vault_url=f"sqlite:///{directory / 'vault.db'}", keyring_path=keyring_path)


def server_settings(directory: Path, vault_url: str, keystore_url: str) -> VaultSettings:
    directory.mkdir(parents=True, exist_ok=True)
    keyring_path = directory / "keyring" / "keyring.json"
    create_keyring(keyring_path)
    return VaultSettings(vault_url=vault_url, keystore_url=keystore_url, keyring_path=keyring_path)


def new_vault(settings: VaultSettings) -> Vault:
    vault = Vault.open(settings, create=True)
    record_instructions(vault, [instructions_in_code(  # registers the controller too
        CONTROLLER, {"enquiry": "until the enquiry is closed",
                     "invoice": "7 years from the end of the financial year"},
        given_on=date(2024, 1, 1), name="Bench Ltd", region="england-and-wales")],
        actor=ACTOR, at=datetime(2024, 1, 1, tzinfo=UTC))
    return vault


# -- synthetic records -------------------------------------------------------------------------

def email_of(i: int) -> str:
    return f"person.{i:07d}@example{i % 97}.co.uk"


def phone_of(i: int) -> str:
    return f"07{700000000 + i % 299_999_999:09d}"


def message_of(i: int) -> str:
    words = [_WORDS[(i * 7 + k * 3) % len(_WORDS)] for k in range(24)]
    return " ".join(words).capitalize() + "."


def make_record(i: int) -> NewRecord:
    """Record i: a new data subject (distinct email), four fields, two of them blind-indexed."""
    return NewRecord(
        controller_id=CONTROLLER, category="enquiry", purpose="answer an enquiry", source="web-form",
        fields={"name": f"Person {i}", "email": email_of(i), "phone": phone_of(i),
                "message": message_of(i)},
    )


@dataclass
class IngestResult:
    records: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else float("inf")


def ingest(vault: Vault, start: int, count: int, *, chunk: int, label: str) -> IngestResult:
    """add_records over records start..start+count, `chunk` per call; only add_records is timed."""
    elapsed = 0.0
    done = 0
    next_report = time.perf_counter() + 10
    while done < count:
        n = min(chunk, count - done)
        batch = [make_record(start + done + k) for k in range(n)]
        t0 = time.perf_counter()
        vault.add_records(batch, actor=ACTOR)
        elapsed += time.perf_counter() - t0
        done += n
        if time.perf_counter() >= next_report:
            progress(f"{label}: {done:,}/{count:,} records, {done / elapsed:,.0f} records/s so far")
            next_report = time.perf_counter() + 10
    return IngestResult(done, elapsed)
