"""The access package (Art. 15): the person's data from every store, and what the law says they
must be told about it, sealed before it touches the disk.

Inside: for each store and table the records as JSON and as CSV, each record with the identity or
reference that led to it; report.html, for the person: the case reference, the controller and its
contact, the Art. 15(1) information (purposes, categories, recipients from the register of
recipients and from the disclosure log, retention, source, rights with Art. 20 where it applies, the
right to complain) taken from the controller's instructions and the data map, and the person's data
itself, a table per store and table; report.pdf, the same report to print; manifest.json with the
counts.

Sealed by include/crypto/sealing.py: the controller opens it with the secret it receives apart
(`gdpr-admin package open FILE --secret-file F`); docs/access-requests.md shows how.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from include.common.files import write_atomically
from include.common.reports import csv_bytes, html_bytes, json_bytes, natural_key, pdf_bytes
from include.common.yamlfiles import LoadedFile
from include.crypto.sealing import FORMAT
from include.datamap.model import DataMap
from include.duties.disclosures import Register, recipients_for
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
# Art. 20 covers data the person provided, processed by consent or contract and by automated means:
# every store the agency searches is a computer system, so the legal basis decides.
PORTABILITY = ("data portability", "Art. 20", "to receive the data you provided to us, kept because you "
               "consented or under a contract with you, in a machine-readable form (the JSON and CSV files of "
               "this package), and to have it sent to another organisation where that is technically feasible")
PORTABLE_BASES = ("consent", "contract")
COMPLAINT = ("the Information Commissioner's Office (ICO), Wycliffe House, Water Lane, Wilmslow SK9 5AF; "
             "ico.org.uk/make-a-complaint; 0303 123 1113")
FOLDED_AFTER = 10  # rows: a longer table is folded in the report (the PDF prints it whole)

# The vault's own categories and sources (include/demo/people.py and the workflows that write them),
# in the person's words; any other shows as recorded.
VAULT_LABELS = {"enquiry": "Your enquiries", "quote": "Quotations prepared for you", "client": "Your client record",
                "invoice": "Your invoices", "contact": "Your details as a client's contact",
                "marketing": "Your newsletter sign-up"}
VAULT_SOURCES = {"web form": "you, through the website's enquiry form", "quotation": "the quotation made for you",
                 "client onboarding": "you, when you became a client", "accounting": "the controller's accounts"}
LOG_LABEL = "Visits to the website (server logs)"
LOG_SOURCE = "your browser, when you visited the website"


@dataclass(frozen=True)
class PackageSection:
    """One table (or one kind of its rows) of a store, as the package shows it."""

    store: str
    table: str
    label: str  # in the person's words
    source: str  # where the data came from (Art. 15(1)(g))
    rows: list[dict]
    category: str  # the controller's instruction category
    instruction: Instruction | None
    categories: list[str]  # the categories of data in it
    kept_because: str | None  # a retain rule of the map, for the erasure right
    section: str | None = None  # the kind of row, where the table holds several

    @property
    def path(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-") if self.section else ""
        return f"data/{self.store}/{self.table}" + (f".{slug}" if slug else "")

    @property
    def portable(self) -> bool:
        return self.instruction is not None and self.instruction.legal_basis in PORTABLE_BASES

    @property
    def columns(self) -> list[str]:
        """Every field of its rows, in the order they first appear; how each row was reached is in the files."""
        return list(dict.fromkeys(column for row in self.rows for column in row if column != "found_by"))

    def cells(self) -> list[list[str]]:
        """Its rows as the report's table shows them: nested values (a JSON column) as compact JSON."""
        return [[_cell(row.get(column)) for column in self.columns] for row in self.rows]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _tables(results: Sequence[StoreResult], maps: Sequence[LoadedFile[DataMap]], book: InstructionBook,
            controller_id: str, controller_name: str, on: date, redactor: Redactor) -> list[PackageSection]:
    by_store = {m.content.store: m.content for m in maps}
    tables = []
    for result in results:
        grouped: dict[tuple[str, str | None], list] = {}
        # In natural order of their keys (order 2 before order 10); the vault's records, whose ids are
        # random, by date.
        for found in sorted(result.records, key=lambda found: (str(found.data.get("created_at", "")) if
                                                                 result.kind == "vault" else "",
                                                                 natural_key(found.key))):
            # A table holding several kinds of row shows each apart.
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
                sources = sorted({r["source"] for r in rows})
                category, label = name, VAULT_LABELS.get(name, name.replace("_", " ").capitalize())
                source = "; ".join(VAULT_SOURCES.get(s, s) for s in sources)
                categories, kept = [name], None
            elif result.kind == "server_logs":
                logs = by_store[result.store].logs
                assert logs is not None  # a server_logs map is validated to have logs
                # One section per log file (its own data files): the label says which.
                category, source = logs.instruction, logs.source or LOG_SOURCE
                label = f"{logs.label or LOG_LABEL}, file {name}"
                categories, kept = ["online identifiers (IP addresses)"], None
            else:
                spec = by_store[result.store].tables[name]
                category = records[0].instruction or spec.instruction
                label = section or spec.label or name.replace("_", " ").capitalize()
                source = spec.source or f"the records of {controller_name}"
                categories = sorted({c.category for c in spec.columns.values()}
                                    | set(spec.key_value.personal_keys.values() if spec.key_value else ()))
                kept = next((e.reason for e in spec.erasures() if e.reason), None)
            tables.append(PackageSection(result.store, name, label, source, rows, category,
                                         book.in_effect(controller_id, category, on), categories, kept, section))
    return tables


def build_package(*, request: Request, controller_name: str, results: Sequence[StoreResult],
                  maps: Sequence[LoadedFile[DataMap]], book: InstructionBook, redactor: Redactor,
                  on: date, disclosed: Sequence[dict] = (), contact: str | None = None,
                  register: Register | None = None) -> dict[str, bytes]:
    """The package's files by path. `on`: the day it is made (the run's date, so a re-run makes the
    same package). `disclosed`: the disclosures of the person's data, as `disclosures.as_told` gives them.
    `contact`: the controller's, from its instruction file. `register`: the register of recipients,
    whose recipients of the person's categories the report names."""
    tables = _tables(results, maps, book, request.controller_id, controller_name, on, redactor)
    files: dict[str, bytes] = {}
    for table in tables:
        base = table.path
        files[f"{base}.json"] = json_bytes(table.rows)
        files[f"{base}.csv"] = csv_bytes(table.rows)
    if disclosed:
        files["data/disclosures.json"] = json_bytes(list(disclosed))
        files["data/disclosures.csv"] = csv_bytes(list(disclosed))
    labels: dict[str, list[str]] = {}
    for table in tables:
        labels.setdefault(table.category, []).append(table.label)
    recipients = [{**recipient, "what": sorted({label for category in recipient["categories"]
                                                for label in labels[category]})}
                  for recipient in recipients_for(register, request.controller_id, labels)] if register else []
    manifest = {
        "format": FORMAT, "request": request.id, "case": request.case_reference, "controller": request.controller_id,
        "made_on": on.isoformat(), "received_on": request.received_on.isoformat(), "due_on": request.due_on.isoformat(),
        "stores_searched": sorted({r.store for r in results}), "withheld_values": redactor.withheld,
        "tables": [{"store": t.store, "table": t.table, "section": t.section, "label": t.label, "records": len(t.rows)}
                   for t in tables],
        "disclosures": len(disclosed),
        "held_back": sum(len(r.held) for r in results),  # possible matches, for the controller to decide
    }
    files["manifest.json"] = json_bytes(manifest)
    portable = [t for t in tables if t.portable]
    files["report.html"] = html_bytes(
        "access_package.html.j2", request=request, controller_name=controller_name, contact=contact, tables=tables,
        manifest=manifest, rights=[*RIGHTS, *([PORTABILITY] if portable else [])], portable=portable,
        complaint=COMPLAINT, disclosed=disclosed, recipients=recipients, folded_after=FOLDED_AFTER)
    files["report.pdf"] = pdf_bytes(files["report.html"])
    return files


def package_path(outbox: Path, controller_id: str, request_id: str) -> Path:
    return Path(outbox) / controller_id / f"access-{request_id}.gdprpkg"


def deliver(outbox: Path, controller_id: str, request_id: str, sealed: bytes) -> Path:
    """Write the sealed package to the controller's outbox (replacing an earlier one atomically)."""
    path = package_path(outbox, controller_id, request_id)
    write_atomically(path, sealed, mode=0o640)
    return path
