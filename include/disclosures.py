"""Third-party disclosures: the register of recipients, the disclosure log, and the transfer guard.

The register (one YAML file, docs/disclosures.md) names each recipient: cloud providers, telephone
and broadband suppliers, courts and authorities; its country, its role, the safeguard relied on for
a transfer outside the UK and the EEA, and the controllers and data categories it receives.

A disclosure is logged with the recipient, the categories, whose data (the opaque subject id where
the vault holds the person, and always the blind index of their email: never the address), when, on
what legal basis, under which of the controller's instructions, and a court order's reference. It is
refused, with the refusal audited and reported, when:
- the recipient is outside the UK and the EEA without a recorded adequacy decision or safeguard
  (the notice promises no such transfer);
- the recipient is not registered to receive those categories from that controller;
- the controller has no instruction covering a category on the day;
- the person's data is restricted.

Each logged disclosure is audited with a digest of its row, so that `verify_disclosures` finds a
row edited or deleted after the fact, and the audit chain finds an edited or deleted audit event.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import insert, or_, select

from include.errors import InvalidInput, Restricted
from include.files import write_atomically
from include.policies.instructions import InstructionBook, LegalBasis
from include.reports import write_html, write_json
from include.requests.package import seal
from include.requests.restriction import require_unrestricted
from include.vault.keystore import chunks
from include.vault.schema import audit_event, disclosure
from include.vault.store import Vault, new_id
from include.yamlfiles import LoadedFile, load_yaml_file

# The UK and the EEA (the EU's 27, Iceland, Liechtenstein, Norway): no transfer safeguard is needed.
UK_AND_EEA = frozenset(
    "GB AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO".split())
CODE = r"^[A-Za-z0-9_.:/+-]{1,64}$"  # what the audit log accepts as a code word (a court order reference)


class RecipientKind(StrEnum):
    cloud_provider = "cloud_provider"
    telecoms = "telecoms"  # telephone and broadband suppliers
    court = "court"
    authority = "authority"


class SafeguardKind(StrEnum):
    adequacy = "adequacy"  # UK adequacy regulations for the country
    idta = "idta"  # the ICO's International Data Transfer Agreement
    scc = "scc"  # EU standard contractual clauses with the UK Addendum
    bcr = "bcr"  # binding corporate rules


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Safeguard(_Strict):
    kind: SafeguardKind
    reference: str = Field(min_length=3, max_length=300)  # the regulation, or the signed agreement


class Receives(_Strict):
    controller: str = Field(min_length=1, max_length=64)
    categories: list[str] = Field(min_length=1)


class Recipient(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    name: str = Field(min_length=2, max_length=200)
    kind: RecipientKind
    role: str = Field(min_length=3, max_length=200)  # what it does for the controllers
    country: str
    safeguard: Safeguard | None = None
    receives: list[Receives] = Field(min_length=1)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"'{value}' is not an ISO 3166 country code (such as GB, IE, US)")
        return value

    @property
    def outside_uk_and_eea(self) -> bool:
        return self.country not in UK_AND_EEA

    def categories_for(self, controller_id: str) -> set[str]:
        return {c for r in self.receives if r.controller == controller_id for c in r.categories}


class Processor(_Strict):
    name: str = Field(min_length=2, max_length=200)
    contact: str = Field(min_length=3, max_length=300)
    representative: str | None = None


class Register(_Strict):
    processor: Processor
    security_measures: list[str] = Field(min_length=1)
    recipients: list[Recipient] = Field(min_length=1)

    def recipient(self, recipient_id: str) -> Recipient:
        found = next((r for r in self.recipients if r.id == recipient_id), None)
        if found is None:
            raise InvalidInput(f"recipient '{recipient_id}' is not in the register of recipients")
        return found


def load_register(path: Path) -> LoadedFile[Register]:
    """The register of recipients; InvalidInput names the file, the line and the field."""
    loaded = load_yaml_file(path, Register, "processor, security_measures and recipients")
    seen = set()
    for index, recipient in enumerate(loaded.content.recipients):
        if recipient.id in seen:
            raise loaded.error(("recipients", index, "id"), f"a second recipient '{recipient.id}'")
        seen.add(recipient.id)
    return loaded


def transfer_refusal(recipient: Recipient) -> str | None:
    """Why a disclosure to the recipient would be a transfer the notice does not allow, or None."""
    if recipient.outside_uk_and_eea and recipient.safeguard is None:
        return (f"transfer refused: {recipient.name} is in {recipient.country}, outside the UK and the EEA, and "
                "no adequacy decision or safeguard (IDTA, SCCs, BCRs) is recorded for it")
    return None


@dataclass(frozen=True)
class Disclosure:
    """One disclosure to record: the person is named by email, which is only ever stored as its
    blind index."""

    controller_id: str
    recipient_id: str
    email: str
    categories: tuple[str, ...]
    legal_basis: str
    disclosed_on: date
    source: str  # "form:<run>" or "file:<digest>:<row>": the same source is logged once
    reference: str | None = None  # a court order's reference


@dataclass(frozen=True)
class Outcome:
    source: str
    disclosure_id: str | None  # None when refused
    refusal: str | None = None
    new: bool = True


def _row_digest(row: dict) -> str:
    canonical = json.dumps({k: (v.isoformat() if isinstance(v, date | datetime) else v)
                            for k, v in sorted(row.items()) if k != "recorded_at"}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check(register: Register, book: InstructionBook, item: Disclosure) -> Recipient:
    recipient = register.recipient(item.recipient_id)
    if (refusal := transfer_refusal(recipient)) is not None:
        raise Restricted(refusal)
    if not item.categories:
        raise InvalidInput("a disclosure names at least one data category")
    if item.legal_basis not in LegalBasis.__members__:
        raise InvalidInput(f"legal basis '{item.legal_basis}' is not one of {', '.join(LegalBasis)}")
    if item.reference is not None and not re.match(CODE, item.reference):
        raise InvalidInput("a court order's reference is 1 to 64 letters, digits and . _ : / + -")
    allowed = recipient.categories_for(item.controller_id)
    if missing := sorted(set(item.categories) - allowed):
        raise Restricted(f"{recipient.name} is not registered to receive category '{missing[0]}' from "
                         f"controller '{item.controller_id}'")
    for category in item.categories:
        book.require(item.controller_id, category, item.disclosed_on, where="disclosure: ")
    return recipient


def record_disclosure(vault: Vault, register: Register, item: Disclosure, *, actor: str, at: datetime) -> Outcome:
    """Log one disclosure once per source, after the checks; a refusal is audited, not raised."""
    with vault.engine.connect() as conn:
        existing = conn.execute(select(disclosure.c.id).where(disclosure.c.source == item.source)).scalar()
    if existing:
        return Outcome(item.source, existing, new=False)
    subjects: list[str] = []
    try:
        lookup = vault.indexer.digest("email", item.controller_id, item.email)
        subjects = vault.find_subjects(item.controller_id, "email", item.email)
        recipient = _check(register, InstructionBook.load(vault), item)
        require_unrestricted(vault, controller_id=item.controller_id, subject_ids=subjects, operation="disclosure",
                             actor=actor, at=at)
    except (Restricted, InvalidInput) as refused:
        with vault.engine.begin() as conn:
            vault.audit.append(conn, at=at, actor=actor, action="disclosure.refused", controller_id=item.controller_id,
                               subject_id=subjects[0] if subjects else None,
                               details={"recipient": item.recipient_id, "source": _source_code(item.source)})
        return Outcome(item.source, None, refusal=str(refused))
    row = {"id": new_id(), "controller_id": item.controller_id, "recipient_id": recipient.id,
           "subject_id": subjects[0] if subjects else None, "email_lookup": lookup,
           "categories": ",".join(sorted(set(item.categories))), "legal_basis": item.legal_basis,
           "disclosed_on": item.disclosed_on, "reference": item.reference,
           "country": recipient.country, "safeguard": recipient.safeguard.kind.value if recipient.safeguard else None,
           "source": item.source, "recorded_at": at}
    with vault.engine.begin() as conn:
        conn.execute(insert(disclosure).values(**row))
        vault.audit.append(conn, at=at, actor=actor, action="disclosure.recorded", controller_id=item.controller_id,
                           subject_id=row["subject_id"], details={
                               "disclosure": row["id"], "recipient": recipient.id, "country": recipient.country,
                               "reference": item.reference, "digest": _row_digest(row)})
    return Outcome(item.source, row["id"])


def _source_code(source: str) -> str:
    return source if len(source) <= 100 else hashlib.sha256(source.encode()).hexdigest()


BATCH_COLUMNS = ("controller", "recipient", "email", "categories", "legal_basis", "disclosed_on")


def read_batch(data: bytes, name: str) -> tuple[str, list[Disclosure | InvalidInput]]:
    """The file's digest and, per row, the disclosure it describes or what is wrong with it (named by
    file and line). A row that cannot be read is refused alone; the others are logged."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{name}: not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        fieldnames = reader.fieldnames or []
        if missing := [c for c in BATCH_COLUMNS if c not in fieldnames]:
            raise InvalidInput(f"{name}:1: missing column(s) {', '.join(missing)}; expected "
                               f"{', '.join(BATCH_COLUMNS)} and optionally reference")
        return digest, [_batch_row(row, name, reader.line_num, digest) for row in reader]
    except csv.Error as exc:
        raise InvalidInput(f"{name}:{reader.line_num}: not CSV as expected ({exc})") from None


def _batch_row(row: dict, name: str, line: int, digest: str) -> Disclosure | InvalidInput:
    """The disclosure a row describes, or what is wrong with it (named by file and line)."""
    try:
        return Disclosure(
            controller_id=row["controller"].strip(), recipient_id=row["recipient"].strip(),
            email=row["email"].strip(),
            categories=tuple(c.strip() for c in row["categories"].split(";") if c.strip()),
            legal_basis=row["legal_basis"].strip(), disclosed_on=date.fromisoformat(row["disclosed_on"].strip()),
            reference=(row.get("reference") or "").strip() or None, source=f"file:{digest}:{line}")
    except (ValueError, AttributeError) as exc:  # a short row gives None for its missing fields
        return InvalidInput(f"{name}:{line}: {exc}")


def disclosures_of(vault: Vault, controller_id: str, *, subject_ids: list[str], emails: list[str]) -> list[dict]:
    """The disclosures of a person's data: by their subject ids or their emails' blind indexes."""
    lookups = [vault.indexer.digest("email", controller_id, email) for email in emails]
    conditions = [disclosure.c.subject_id.in_(part) for part in chunks(subject_ids)] + \
                 [disclosure.c.email_lookup.in_(part) for part in chunks(lookups)]
    if not conditions:
        return []
    with vault.engine.connect() as conn:
        rows = conn.execute(select(disclosure).where(disclosure.c.controller_id == controller_id, or_(*conditions))
                            .order_by(disclosure.c.disclosed_on, disclosure.c.id)).mappings().all()
    return [dict(row) for row in rows]


def verify_disclosures(vault: Vault) -> list[str]:
    """Problems with the disclosure log: a row whose content no longer matches what was audited
    (edited), an audited disclosure without its row (deleted), a row never audited (inserted)."""
    with vault.engine.connect() as conn:
        rows = {r["id"]: dict(r) for r in conn.execute(select(disclosure)).mappings()}
        audited = {}
        for seq, details in conn.execute(select(audit_event.c.seq, audit_event.c.details)
                                         .where(audit_event.c.action == "disclosure.recorded")):
            found = json.loads(details)
            audited[found["disclosure"]] = (seq, found["digest"])
    problems = []
    for disclosure_id, (seq, digest) in sorted(audited.items()):
        if disclosure_id not in rows:
            problems.append(f"disclosure {disclosure_id} (audit event {seq}) is missing from the log (deleted)")
        elif _row_digest(rows[disclosure_id]) != digest:
            problems.append(f"disclosure {disclosure_id} does not match audit event {seq} (edited)")
    problems += [f"disclosure {i} was never audited (inserted)" for i in sorted(set(rows) - set(audited))]
    return problems


@dataclass(frozen=True)
class Refusal:
    source: str  # the form's run, or the file and line
    controller_id: str | None
    recipient_id: str | None
    reason: str


@dataclass
class BatchOutcome:
    file: str
    digest: str
    recorded: int = 0
    already_logged: int = 0
    refusals: list[Refusal] = field(default_factory=list)


def ingest_inbox(vault: Vault, register: Register, inbox: Path, *, actor: str, at: datetime) -> list[BatchOutcome]:
    """Log every row of every CSV file in the inbox (a row already logged, from the same file content,
    is not logged again); then seal the file into inbox/processed/ and remove the plain one, so the
    addresses it holds do not stay on disk. A file that cannot be read at all stays, and is named."""
    outcomes, unreadable = [], []
    for path in sorted(Path(inbox).glob("*.csv")):
        data = path.read_bytes()
        try:
            digest, rows = read_batch(data, path.name)
        except InvalidInput as exc:
            unreadable.append(str(exc))
            continue
        outcome = BatchOutcome(path.name, digest)
        for row in rows:
            if isinstance(row, InvalidInput):
                outcome.refusals.append(Refusal(f"{path.name}", None, None, str(row)))
                continue
            logged = record_disclosure(vault, register, row, actor=actor, at=at)
            if logged.refusal:
                line = row.source.rsplit(":", 1)[1]
                outcome.refusals.append(Refusal(f"{path.name}:{line}", row.controller_id, row.recipient_id,
                                                logged.refusal))
            elif logged.new:
                outcome.recorded += 1
            else:
                outcome.already_logged += 1
        sealed, _secret = seal({path.name: data}, keyring=vault.keyring, request_id=f"disclosures-{digest[:32]}")
        write_atomically(Path(inbox) / "processed" / f"{path.stem}-{digest[:12]}.gdprpkg", sealed, mode=0o600)
        path.unlink()
        outcomes.append(outcome)
    if unreadable:
        raise InvalidInput("; ".join(unreadable) + " (left in the inbox; the other files were logged)")
    return outcomes


def report_refusals(outbox: Path, refusals: list[Refusal], *, at: datetime) -> list[Path]:
    """One report per controller of the disclosures refused (in its outbox; rows naming no controller
    go to outbox/_unassigned): no personal values, only sources, recipients and reasons."""
    written = []
    by_controller: dict[str, list[Refusal]] = {}
    for refusal in refusals:
        by_controller.setdefault(refusal.controller_id or "_unassigned", []).append(refusal)
    for controller_id, found in sorted(by_controller.items()):
        base = Path(outbox) / controller_id / f"disclosure-refusals-{at:%Y%m%dT%H%M%S}"
        write_json(base.with_suffix(".json"), [r.__dict__ for r in found])
        written.append(write_html(base.with_suffix(".html"), "disclosure_refusals.html.j2", controller_id=controller_id,
                                  refusals=found, at=at))
    return written


def as_told(register: Register, rows: list[dict]) -> list[dict]:
    """Disclosure rows as a person (or a recipient list for Art. 19) reads them: no opaque ids."""
    names = {r.id: r for r in register.recipients}
    return [{"recipient": names[row["recipient_id"]].name if row["recipient_id"] in names else row["recipient_id"],
             "role": names[row["recipient_id"]].role if row["recipient_id"] in names else "",
             "country": row["country"], "safeguard": row["safeguard"] or "",
             "categories": row["categories"].replace(",", ", "), "disclosed_on": row["disclosed_on"].isoformat(),
             "legal_basis": row["legal_basis"], "reference": row["reference"] or ""} for row in rows]
