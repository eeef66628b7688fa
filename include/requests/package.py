"""The access package (Art. 15): the person's data from every store, and what the law says they
must be told about it, sealed before it touches the disk.

Inside: for each store and table the records as JSON and as CSV, each record with the identity or
reference that led to it; report.html with the Art. 15(1) information (purposes, categories,
recipients, retention, source, rights, the right to complain) taken from the controller's
instructions and the data map; manifest.json with the counts.

Sealed: the files are a tar archive encrypted with AES-256-GCM under a fresh package key. The key is
stored in the package wrapped by the agency's KEK (so `gdpr-admin package open` can read it with
the keyring), and is the secret the controller receives separately to open it
(`gdpr-admin package open FILE --secret-file F`); docs/access-requests.md shows both.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from include.crypto.envelope import NONCE_BYTES, unwrap_data_key, wrap_data_key
from include.crypto.keyring import Keyring
from include.stores.base import StoreResult
from include.datamap.model import DataMap
from include.errors import InvalidInput, KeyringError
from include.files import write_atomically
from include.policies.instructions import Instruction, InstructionBook
from include.reports import csv_bytes, html_bytes, json_bytes
from include.requests.redaction import VAULT_FREE_TEXT, Redactor
from include.requests.register import Request
from include.yamlfiles import LoadedFile

FORMAT = "gdpr-access-package/1"
_MAGIC = b"GDPRPKG1\n"
RIGHTS = (
    ("rectification", "Art. 16", "to have inaccurate data corrected and incomplete data completed"),
    ("erasure", "Art. 17", "to have your data erased, unless the law requires it to be kept"),
    ("restriction", "Art. 18", "to have its use restricted while accuracy or an objection is settled"),
    ("objection", "Art. 21", "to object to processing based on legitimate interests, and to direct marketing"),
)
COMPLAINT = ("the Information Commissioner's Office (ICO), Wycliffe House, Water Lane, Wilmslow SK9 5AF; "
             "ico.org.uk/make-a-complaint; 0303 123 1113")


@dataclass(frozen=True)
class Table:
    store: str
    table: str
    source: str
    rows: list[dict]
    instruction: Instruction | None
    categories: list[str]
    kept_because: str | None  # a retain rule of the map, for the erasure right
    section: str | None = None  # the kind of row, where the table holds several

    @property
    def path(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-") if self.section else ""
        return f"data/{self.store}/{self.table}" + (f".{slug}" if slug else "")


def _tables(results: Sequence[StoreResult], maps: Sequence[LoadedFile[DataMap]], book: InstructionBook,
            controller_id: str, on: date, redactor: Redactor) -> list[Table]:
    by_store = {m.content.store: m.content for m in maps}
    tables = []
    for result in results:
        grouped: dict[tuple[str, str | None], list] = {}
        for found in result.records:  # a table holding several kinds of row shows each apart
            grouped.setdefault((found.table, found.section), []).append(found)
        for (name, section), records in grouped.items():
            rows = []
            for found in records:
                data = dict(found.data)
                if result.kind == "vault":
                    for field in VAULT_FREE_TEXT:
                        if isinstance(data.get(field), str):
                            data[field] = redactor.free_text(data[field])
                elif result.kind == "server_logs":
                    data["line"] = redactor.contacts(data["line"])
                else:
                    for column, spec in by_store[result.store].tables[name].columns.items():
                        if spec.free_text and isinstance(data.get(column), str):
                            data[column] = redactor.free_text(data[column])
                rows.append({**data, "found_by": found.found_by})
            if result.kind == "vault":
                category, source = name, ", ".join(sorted({r["source"] for r in rows}))
                categories, kept = [name], None
            elif result.kind == "server_logs":
                store = by_store[result.store]
                category, source, categories, kept = (store.logs.instruction, store.description or "server logs",
                                                      ["online identifiers (IP addresses)"], None)
            else:
                store, spec = by_store[result.store], by_store[result.store].tables[name]
                category, source = records[0].instruction or spec.instruction, store.description or result.store
                categories = sorted({c.category for c in spec.columns.values()}
                                    | set(spec.key_value.personal_keys.values() if spec.key_value else ()))
                kept = next((e.reason for e in spec.erasures() if e.reason), None)
            tables.append(Table(result.store, name, source, rows, book.in_effect(controller_id, category, on),
                                categories, kept, section))
    return tables


def build_package(*, request: Request, controller_name: str, results: Sequence[StoreResult],
                  maps: Sequence[LoadedFile[DataMap]], book: InstructionBook, redactor: Redactor,
                  on: date, disclosed: Sequence[dict] = ()) -> dict[str, bytes]:
    """The package's files by path. `on`: the day it is made (the run's date, so a re-run makes the
    same package). `disclosed`: the disclosures of the person's data, as `disclosures.as_told` gives them."""
    tables = _tables(results, maps, book, request.controller_id, on, redactor)
    files: dict[str, bytes] = {}
    for table in tables:
        base = table.path
        files[f"{base}.json"] = json_bytes(table.rows)
        files[f"{base}.csv"] = csv_bytes(table.rows)
    if disclosed:
        files["data/disclosures.json"] = json_bytes(list(disclosed))
        files["data/disclosures.csv"] = csv_bytes(list(disclosed))
    manifest = {
        "format": FORMAT, "request": request.id, "controller": request.controller_id, "made_on": on.isoformat(),
        "received_on": request.received_on.isoformat(), "due_on": request.due_on.isoformat(),
        "stores_searched": sorted({r.store for r in results}), "withheld_values": redactor.withheld,
        "tables": [{"store": t.store, "table": t.table, "section": t.section, "records": len(t.rows)}
                   for t in tables],
        "disclosures": len(disclosed),
        "held_back": sum(len(r.held) for r in results),  # possible matches, for the controller to decide
    }
    files["manifest.json"] = json_bytes(manifest)
    files["report.html"] = html_bytes("access_package.html.j2", request=request, controller_name=controller_name,
                                      tables=tables, manifest=manifest, rights=RIGHTS, complaint=COMPLAINT,
                                      disclosed=disclosed)
    return files


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o600
            archive.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def _wrapping(request_id: str, key: bytes, keyring: Keyring) -> dict:
    """The header fields that let the keyring's active KEK open the package key."""
    return {"kek_version": keyring.active_kek, "wrapped_key": base64.b64encode(
        wrap_data_key(keyring.kek(keyring.active_kek), f"package:{request_id}", key)).decode()}


def _assembled(header: dict, key: bytes, plain: bytes) -> bytes:
    head = json.dumps(header, sort_keys=True).encode()
    nonce = os.urandom(NONCE_BYTES)
    body = AESGCM(key).encrypt(nonce, plain, head)  # the header is bound to the contents
    return _MAGIC + len(head).to_bytes(4, "big") + head + nonce + body


def seal(files: dict[str, bytes], *, keyring: Keyring, request_id: str) -> tuple[bytes, str]:
    """The sealed package and its secret (the package key, base64), for the controller."""
    key = AESGCM.generate_key(256)
    header = {"format": FORMAT, "request": request_id, **_wrapping(request_id, key, keyring)}
    return _assembled(header, key, _tar(files)), base64.urlsafe_b64encode(key).decode()


def reseal(sealed: bytes, keyring: Keyring) -> bytes:
    """The same package with its key wrapped under the keyring's active KEK (the secret the
    controller holds still opens it), so that the KEK it was sealed under can be destroyed."""
    head, header, body_at = _parts(sealed)
    key = base64.urlsafe_b64decode(package_secret(sealed, keyring))
    try:
        plain = AESGCM(key).decrypt(sealed[body_at:body_at + NONCE_BYTES], sealed[body_at + NONCE_BYTES:], head)
    except InvalidTag:
        raise KeyringError("the package does not open with this keyring, or was altered") from None
    return _assembled({**header, **_wrapping(header["request"], key, keyring)}, key, plain)


def sealed_kek_version(sealed: bytes) -> int:
    """The version of the KEK a sealed file's key is wrapped under."""
    try:
        return int(_parts(sealed)[1]["kek_version"])
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("not an access package (its header names no key-encryption key)") from None


def _parts(sealed: bytes) -> tuple[bytes, dict, int]:
    if not sealed.startswith(_MAGIC):
        raise InvalidInput("not an access package (its first bytes are wrong)")
    start = len(_MAGIC) + 4
    size = int.from_bytes(sealed[len(_MAGIC):start], "big")
    head = sealed[start:start + size]
    try:
        return head, json.loads(head), start + size
    except ValueError:
        raise InvalidInput("not an access package (its header is not JSON)") from None


def package_secret(sealed: bytes, keyring: Keyring) -> str:
    """The secret that opens the package, for the controller (send it apart from the package)."""
    _, header, _ = _parts(sealed)
    key = unwrap_data_key(keyring.kek(header["kek_version"]), f"package:{header['request']}",
                          base64.b64decode(header["wrapped_key"]))
    return base64.urlsafe_b64encode(key).decode()


def open_sealed(sealed: bytes, *, keyring: Keyring | None = None, secret: str | None = None) -> dict[str, bytes]:
    """The package's files, opened with the keyring or with the secret."""
    head, _, body_at = _parts(sealed)
    if secret is None and keyring is None:
        raise InvalidInput("opening a package needs the keyring or its secret")
    try:
        key = base64.urlsafe_b64decode((secret or package_secret(sealed, keyring)).strip())
    except ValueError:
        raise InvalidInput("the secret is not base64") from None
    nonce, body = sealed[body_at:body_at + NONCE_BYTES], sealed[body_at + NONCE_BYTES:]
    try:
        plain = AESGCM(key).decrypt(nonce, body, head)
    except (InvalidTag, ValueError):
        raise KeyringError("the package does not open with this secret or keyring, or was altered") from None
    with tarfile.open(fileobj=io.BytesIO(plain)) as archive:
        return {member.name: archive.extractfile(member).read() for member in archive.getmembers()}


def package_path(outbox: Path, controller_id: str, request_id: str) -> Path:
    return Path(outbox) / controller_id / f"access-{request_id}.gdprpkg"


def deliver(outbox: Path, controller_id: str, request_id: str, sealed: bytes) -> Path:
    """Write the sealed package to the controller's outbox (replacing an earlier one atomically)."""
    path = package_path(outbox, controller_id, request_id)
    write_atomically(path, sealed, mode=0o640)
    return path
