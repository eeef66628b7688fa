"""The processor's records of processing (Art. 30(2)), per controller: the processor and the controller
with their contacts, the categories of processing (from the controller's instructions in effect),
the recipients and what they receive, transfers outside the UK and the EEA with their safeguards,
the disclosures and refusals of the period, and the security measures. As HTML and CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func, select

from include.common.errors import UnknownRecord
from include.common.reports import write_csv, write_html, write_json
from include.common.yamlfiles import LoadedFile
from include.duties.disclosures import Register, transfer_refusal
from include.policies.instructions import InstructionFile
from include.policies.rules import start_of
from include.vault.schema import audit_event, controller, disclosure
from include.vault.store import Vault

CSV_COLUMNS = ("section", "name", "purpose", "legal_basis", "retention", "kind", "role", "country", "categories",
               "safeguard", "safeguard_reference", "disclosures", "detail")


@dataclass(frozen=True)
class ProcessorRecords:
    controller_id: str
    controller_name: str
    controller_contact: str | None
    as_of: date
    period_start: date
    processor: dict
    processing: list[dict]
    recipients: list[dict]
    transfers: list[dict]
    refusals: int
    security_measures: list[str]

    def rows(self) -> list[dict]:
        """The records as CSV rows, one per item, by section."""
        rows = [{"section": "processor", "name": self.processor["name"], "detail": self.processor["contact"]},
                {"section": "controller", "name": self.controller_name, "detail": self.controller_contact or ""}]
        rows += [{"section": "processing", "name": p["category"], "purpose": p["purpose"],
                  "legal_basis": p["legal_basis"], "retention": p["retention"]} for p in self.processing]
        rows += [{"section": "recipient", "name": r["name"], "kind": r["kind"], "role": r["role"],
                  "country": r["country"], "categories": ";".join(r["categories"]),
                  "disclosures": str(r["disclosures"])} for r in self.recipients]
        rows += [{"section": "transfer", "name": t["name"], "country": t["country"], "safeguard": t["safeguard"],
                  "safeguard_reference": t["safeguard_reference"], "detail": t["status"]} for t in self.transfers]
        rows += [{"section": "security", "detail": measure} for measure in self.security_measures]
        rows.append({"section": "refusals", "detail": str(self.refusals)})
        return rows


def processor_records(vault: Vault, register: Register, instructions: list[LoadedFile[InstructionFile]], *,
                      controller_id: str, period_start: date, as_of: date) -> ProcessorRecords:
    with vault.engine.connect() as conn:
        name = conn.execute(select(controller.c.name).where(controller.c.id == controller_id)).scalar()
        if name is None:
            raise UnknownRecord(f"controller '{controller_id}' is not registered in the vault")
        counts: dict[str, int] = dict(conn.execute(select(disclosure.c.recipient_id, func.count())
                                                   .where(disclosure.c.controller_id == controller_id,
                                                          disclosure.c.disclosed_on >= period_start,
                                                          disclosure.c.disclosed_on <= as_of)
                                                   .group_by(disclosure.c.recipient_id)).all())
        refusals = conn.execute(select(func.count()).select_from(audit_event).where(
            audit_event.c.action == "disclosure.refused", audit_event.c.controller_id == controller_id,
            audit_event.c.at >= start_of(period_start),
            audit_event.c.at < start_of(as_of + timedelta(days=1)))).scalar_one()
    book = vault.instruction_book()
    processing = []
    for category in book.categories(controller_id):
        if (instruction := book.in_effect(controller_id, category, as_of)) is not None:
            processing.append({"category": category, "purpose": instruction.purpose,
                               "legal_basis": instruction.legal_basis, "retention": instruction.retention.text,
                               "given_by": instruction.given_by, "given_on": instruction.given_on.isoformat()})
    recipients, transfers = [], []
    for recipient in register.recipients:
        if not (categories := sorted(recipient.categories_for(controller_id))):
            continue
        recipients.append({"id": recipient.id, "name": recipient.name, "kind": recipient.kind.value,
                           "role": recipient.role, "country": recipient.country, "categories": categories,
                           "disclosures": counts.get(recipient.id, 0)})
        if recipient.outside_uk_and_eea:
            transfers.append({"name": recipient.name, "country": recipient.country,
                              "safeguard": recipient.safeguard.kind.value if recipient.safeguard else "none",
                              "safeguard_reference": recipient.safeguard.reference if recipient.safeguard else "",
                              "status": "refused: no safeguard recorded" if transfer_refusal(recipient)
                              else "allowed under the safeguard"})
    contact = next((f.content.contact for f in instructions if f.content.controller == controller_id), None)
    return ProcessorRecords(controller_id, name, contact, as_of, period_start, register.processor.model_dump(),
                            processing, recipients, transfers, refusals, list(register.security_measures))


def write_processor_records(directory: Path, records: ProcessorRecords) -> dict[str, str]:
    """records-<as_of>.html, .csv and .json under directory/<controller>/."""
    base = Path(directory) / records.controller_id / f"records-{records.as_of.isoformat()}"
    html = write_html(base.with_suffix(".html"), "processor_records.html.j2", records=records)
    table = write_csv(base.with_suffix(".csv"), records.rows(), CSV_COLUMNS)
    data = write_json(base.with_suffix(".json"), records.__dict__)
    return {"html": str(html), "csv": str(table), "json": str(data)}
