"""The access package (Art. 15): the person's data from every store, and what the law says they
must be told about it, sealed before it touches the disk.

Inside: for each store and table the records as JSON and as CSV, each record with the identity or
reference that led to it; report.html with the Art. 15(1) information (purposes, categories,
recipients, retention, source, rights, the right to complain) taken from the controller's
instructions and the data map; manifest.json with the counts.

Sealed by include/crypto/sealing.py: the controller opens it with the secret it receives apart
(`gdpr-admin package open FILE --secret-file F`); docs/access-requests.md shows how.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from include.common.files import write_atomically
from include.common.reports import csv_bytes, html_bytes, json_bytes
from include.common.yamlfiles import LoadedFile
from include.crypto.sealing import FORMAT
from include.datamap.model import DataMap
from include.policies.instructions import Instruction, InstructionBook
from include.requests.register import Request
from include.stores.base import StoreResult
from include.stores.redaction import VAULT_FREE_TEXT, Redactor

RIGHTS = (
    ("rectification", "Art. 16", "to have inaccurate data corrected and incomplete data completed"),
    ("erasure", "Art. 17", "to have your data erased, unless the law requires it to be kept"),
    ("restriction", "Art. 18", "to have its use restricted while accuracy or an objection is settled"),
    ("objection", "Art. 21", "to object to processing based on legitimate interests, and to direct marketing"),
)
COMPLAINT = ("the Information Commissioner's Office (ICO), Wycliffe House, Water Lane, Wilmslow SK9 5AF; "
             "ico.org.uk/make-a-complaint; 0303 123 1113")


@dataclass(frozen=True)
class PackageSection:
    """One table (or one kind of its rows) of a store, as the package shows it."""

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
            controller_id: str, on: date, redactor: Redactor) -> list[PackageSection]:
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
                    for column, col in by_store[result.store].tables[name].columns.items():
                        if col.free_text and isinstance(data.get(column), str):
                            data[column] = redactor.free_text(data[column])
                rows.append({**data, "found_by": found.found_by})
            if result.kind == "vault":
                category, source = name, ", ".join(sorted({r["source"] for r in rows}))
                categories, kept = [name], None
            elif result.kind == "server_logs":
                store = by_store[result.store]
                assert store.logs is not None  # a server_logs map is validated to have logs
                category, source, categories, kept = (store.logs.instruction, store.description or "server logs",
                                                      ["online identifiers (IP addresses)"], None)
            else:
                store, spec = by_store[result.store], by_store[result.store].tables[name]
                category, source = records[0].instruction or spec.instruction, store.description or result.store
                categories = sorted({c.category for c in spec.columns.values()}
                                    | set(spec.key_value.personal_keys.values() if spec.key_value else ()))
                kept = next((e.reason for e in spec.erasures() if e.reason), None)
            tables.append(PackageSection(result.store, name, source, rows, book.in_effect(controller_id, category, on),
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


def package_path(outbox: Path, controller_id: str, request_id: str) -> Path:
    return Path(outbox) / controller_id / f"access-{request_id}.gdprpkg"


def deliver(outbox: Path, controller_id: str, request_id: str, sealed: bytes) -> Path:
    """Write the sealed package to the controller's outbox (replacing an earlier one atomically)."""
    path = package_path(outbox, controller_id, request_id)
    write_atomically(path, sealed, mode=0o640)
    return path
