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

Each logged disclosure is audited with a digest of its row, keyed (an HMAC under a key derived from
the keyring, so nobody without it can compute one for an edited row), so that `verify_disclosures`
finds a row edited or deleted after the fact; only digests of events inside the verified audit chain
are trusted (include/vault/audit.py), and the chain finds an edited, deleted or forged audit event.

Batch files come from other systems: before any of a row's values is used, its controller must be
registered in the vault (a controller id names the folder a refusal report is written to), its
recipient in the register, its categories known to the register, its legal basis and reference well
formed. What is wrong with a row names the column and the rule, never the cell's value: a shifted
column can put an address where a date should be.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path

import phonenumbers
from pydantic import Field, field_validator
from sqlalchemy import insert, or_, select

from include.common.errors import InvalidInput, Restricted
from include.common.files import write_atomically
from include.common.models import StrictModel
from include.common.reports import write_html, write_json
from include.common.yamlfiles import LoadedFile, load_yaml_file
from include.crypto.keyring import Keyring
from include.crypto.sealing import seal
from include.policies.instructions import InstructionBook, LegalBasis
from include.vault.audit import AuditVerification
from include.vault.keystore import chunks
from include.vault.restriction import require_unrestricted
from include.vault.schema import disclosure
from include.vault.store import Vault, new_id

# The UK and the EEA (the EU's 27, Iceland, Liechtenstein, Norway): no transfer safeguard is needed.
UK_AND_EEA = frozenset(
    ["GB", "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT",
     "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO"])
CODE = r"^[A-Za-z0-9_.:/+-]{1,64}$"  # what the audit log accepts as a code word (a court order reference)
CONTROLLER_ID = r"[a-z0-9][a-z0-9-]{0,63}"  # as include/policies/instructions.py gives them


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



class Safeguard(StrictModel):
    kind: SafeguardKind
    reference: str = Field(min_length=3, max_length=300)  # the regulation, or the signed agreement


class Receives(StrictModel):
    controller: str = Field(min_length=1, max_length=64)
    categories: list[str] = Field(min_length=1)


class Recipient(StrictModel):
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


class Processor(StrictModel):
    name: str = Field(min_length=2, max_length=200)
    contact: str = Field(min_length=3, max_length=300)
    representative: str | None = None


class Register(StrictModel):
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


RECORDED = "disclosure.recorded"


def _digest_key(keyring: Keyring) -> bytes:
    return keyring.derive("disclosure-digest")


def _row_mac(key: bytes, row: dict) -> str:
    """The keyed digest of a disclosure row, every column included (recorded_at in UTC)."""
    canonical = json.dumps({k: (v.astimezone(UTC).isoformat() if isinstance(v, datetime) else
                                v.isoformat() if isinstance(v, date) else v)
                            for k, v in sorted(row.items())}, sort_keys=True)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _row_digest(row: dict) -> str:
    """The unkeyed digest of events written before digests were keyed: trusted only inside the
    verified chain, where nobody can swap it for another."""
    canonical = json.dumps({k: (v.isoformat() if isinstance(v, date | datetime) else v)
                            for k, v in sorted(row.items()) if k != "recorded_at"}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _matches(key: bytes, row: dict, audited: dict) -> bool:
    if "mac" in audited:
        return hmac.compare_digest(_row_mac(key, row), str(audited["mac"]))
    return "digest" in audited and hmac.compare_digest(_row_digest(row), str(audited["digest"]))


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


def _logged(vault: Vault, source: str) -> str | None:
    """The id of the disclosure logged from that source, if one was."""
    with vault.engine.connect() as conn:
        return conn.execute(select(disclosure.c.id).where(disclosure.c.source == source)).scalar()


def _audit_refusal(vault: Vault, register: Register, item: Disclosure, *, registered: bool, subject_id: str | None,
                   actor: str, at: datetime) -> None:
    """The refusal audited with the controller and the recipient only if they are known ones: the
    audit log never holds what a batch file put in their place."""
    recipient = item.recipient_id if any(r.id == item.recipient_id for r in register.recipients) else None
    with vault.engine.begin() as conn:
        vault.audit.append(conn, at=at, actor=actor, action="disclosure.refused",
                           controller_id=item.controller_id if registered else None, subject_id=subject_id,
                           details={"recipient": recipient, "source": _source_code(item.source)})


def record_disclosure(vault: Vault, register: Register, item: Disclosure, *, actor: str, at: datetime,
                      controllers: Collection[str] | None = None) -> Outcome:
    """Log one disclosure once per source, after the checks; a refusal is audited, not raised.
    controllers: the registered controllers, if the caller has them already."""
    if existing := _logged(vault, item.source):
        return Outcome(item.source, existing, new=False)
    subjects: list[str] = []
    registered = item.controller_id in (vault.controller_ids() if controllers is None else controllers)
    try:
        if not registered:
            raise InvalidInput("the controller is not registered in the vault")
        lookup = vault.indexer.digest("email", item.controller_id, item.email)
        subjects = vault.find_subjects(item.controller_id, "email", item.email)
        recipient = _check(register, vault.instruction_book(), item)
        require_unrestricted(vault, controller_id=item.controller_id, subject_ids=subjects, operation="disclosure",
                             actor=actor, at=at)
    except (Restricted, InvalidInput) as refused:
        _audit_refusal(vault, register, item, registered=registered, subject_id=subjects[0] if subjects else None,
                       actor=actor, at=at)
        return Outcome(item.source, None, refusal=str(refused))
    disclosure_id, subject_id = new_id(), subjects[0] if subjects else None
    row = {"id": disclosure_id, "controller_id": item.controller_id, "recipient_id": recipient.id,
           "subject_id": subject_id, "email_lookup": lookup,
           "categories": ",".join(sorted(set(item.categories))), "legal_basis": item.legal_basis,
           "disclosed_on": item.disclosed_on, "reference": item.reference,
           "country": recipient.country, "safeguard": recipient.safeguard.kind.value if recipient.safeguard else None,
           "source": item.source, "recorded_at": at}
    with vault.engine.begin() as conn:
        conn.execute(insert(disclosure).values(**row))
        vault.audit.append(conn, at=at, actor=actor, action="disclosure.recorded", controller_id=item.controller_id,
                           subject_id=subject_id, details={
                               "disclosure": disclosure_id, "recipient": recipient.id, "country": recipient.country,
                               "reference": item.reference, "mac": _row_mac(_digest_key(vault.keyring), row)})
    return Outcome(item.source, disclosure_id)


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
    """The disclosure a row describes, or what is wrong with it (named by file, line and column, never
    by the value)."""
    where = f"{name}:{line}"
    if row.get(None):  # csv.DictReader puts the fields past the header's under None
        return InvalidInput(f"{where}: the row has {len(row[None])} more field(s) than the header "
                            "(a value holding a comma, not in quotes?)")
    if any(value is None for value in row.values()):  # and gives None for the fields a short row lacks
        return InvalidInput(f"{where}: the row has fewer fields than the header")
    values = {column: value.strip() for column, value in row.items()}
    if empty := [column for column in BATCH_COLUMNS if not values[column]]:
        return InvalidInput(f"{where}: column '{empty[0]}' is empty")
    try:
        disclosed_on = date.fromisoformat(values["disclosed_on"])
    except ValueError:
        return InvalidInput(f"{where}: column 'disclosed_on' is not a date written YYYY-MM-DD")
    return Disclosure(
        controller_id=values["controller"], recipient_id=values["recipient"], email=values["email"],
        categories=tuple(c.strip() for c in values["categories"].split(";") if c.strip()),
        legal_basis=values["legal_basis"], disclosed_on=disclosed_on,
        reference=values.get("reference") or None, source=f"file:{digest}:{line}")


def _unknown_in_batch(item: Disclosure, register: Register, controllers: Collection[str]) -> str | None:
    """What in a batch row is not a registered controller, a registered recipient, a category the
    register knows, a legal basis or a reference: checked before any of it is used (the controller id
    names a folder) or quoted (the reasons name the column, never the value)."""
    if item.controller_id not in controllers:
        return "column 'controller': not a controller registered in the vault"
    if not any(r.id == item.recipient_id for r in register.recipients):
        return "column 'recipient': not a recipient in the register of recipients"
    known = {c for r in register.recipients for receives in r.receives for c in receives.categories}
    if not item.categories or any(c not in known for c in item.categories):
        return "column 'categories': not data categories that the register of recipients names"
    if item.legal_basis not in LegalBasis.__members__:
        return f"column 'legal_basis': not one of {', '.join(LegalBasis)}"
    if item.reference is not None and not re.match(CODE, item.reference):
        return "column 'reference': a court order's reference is 1 to 64 letters, digits and . _ : / + -"
    return None


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


def verify_audit_log(vault: Vault) -> tuple[AuditVerification, list[str]]:
    """The audit log verified (chain, head, anchor: include/vault/audit.py), and the problems with the
    disclosure log checked against the disclosure events of that chain, both read in one snapshot."""
    with vault.engine.connect() as conn:
        chain = vault.audit.verify(conn, collect=(RECORDED,))
        rows = {r["id"]: dict(r) for r in conn.execute(select(disclosure)).mappings()}
    key = _digest_key(vault.keyring)
    audited: dict[str, tuple[int, dict]] = {}
    for seq, _action, details in chain.collected:
        found = json.loads(details)
        audited[str(found.get("disclosure"))] = (seq, found)
    problems = []
    for disclosure_id, (seq, found) in sorted(audited.items()):
        if disclosure_id not in rows:
            problems.append(f"disclosure {disclosure_id} (audit event {seq}) is missing from the log (deleted)")
        elif not _matches(key, rows[disclosure_id], found):
            problems.append(f"disclosure {disclosure_id} does not match audit event {seq} (edited)")
    problems += [f"disclosure {i} has no event in the verified audit chain (inserted after the fact, or its "
                 "event forged, moved out of the chain or edited)" for i in sorted(set(rows) - set(audited))]
    return chain, problems


def verify_disclosures(vault: Vault) -> list[str]:
    """Problems with the disclosure log: a row whose content no longer matches the keyed digest its
    audit event holds (edited), an audited disclosure without its row (deleted), a row with no event
    in the verified chain (inserted, or its event forged). Only events of the verified chain are
    trusted: see verify_audit_log."""
    return verify_audit_log(vault)[1]


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
    controllers = set(vault.controller_ids())
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
            line = row.source.rsplit(":", 1)[1]
            if _logged(vault, row.source):  # from this file content before, whatever has changed since
                outcome.already_logged += 1
                continue
            if unknown := _unknown_in_batch(row, register, controllers):
                registered = row.controller_id in controllers
                _audit_refusal(vault, register, row, registered=registered, subject_id=None, actor=actor, at=at)
                outcome.refusals.append(Refusal(
                    f"{path.name}:{line}", row.controller_id if registered else None,
                    row.recipient_id if any(r.id == row.recipient_id for r in register.recipients) else None,
                    unknown))
                continue
            logged = record_disclosure(vault, register, row, actor=actor, at=at, controllers=controllers)
            if logged.refusal:
                outcome.refusals.append(Refusal(f"{path.name}:{line}", row.controller_id, row.recipient_id,
                                                logged.refusal))
            elif logged.new:
                outcome.recorded += 1
            else:
                outcome.already_logged += 1
        with vault.keystore.wrapping() as keyring:  # a key rotation waits until the file is written
            sealed, _secret = seal({path.name: data}, keyring=keyring, reference=f"disclosures-{digest[:32]}")
            write_atomically(Path(inbox) / "processed" / f"{path.stem}-{digest[:12]}.gdprpkg", sealed, mode=0o600)
        path.unlink()
        outcomes.append(outcome)
    if unreadable:
        raise InvalidInput("; ".join(unreadable) + " (left in the inbox; the other files were logged)")
    return outcomes


def report_refusals(outbox: Path, refusals: list[Refusal], *, at: datetime,
                    controllers: Collection[str] | None = None) -> list[Path]:
    """One report per controller of the disclosures refused (in its outbox; rows naming no controller
    go to outbox/_unassigned): no personal values, only sources, recipients and reasons.

    A controller id names a folder only if it is one (the form of include/policies/instructions.py's
    ids and, given controllers, one of them); any other goes to _unassigned too, without it, so no
    report is ever written outside the outbox."""
    written = []
    by_controller: dict[str, list[Refusal]] = {}
    for refusal in refusals:
        folder = refusal.controller_id
        if not (folder and re.fullmatch(CONTROLLER_ID, folder) and (controllers is None or folder in controllers)):
            folder, refusal = "_unassigned", replace(refusal, controller_id=None)
        by_controller.setdefault(folder, []).append(refusal)
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


# Courts and authorities receive data only when the law obliges the controller; the others routinely.
_WHEN_ORDERED = {RecipientKind.court: "only under a court order", RecipientKind.authority: "only when the law requires"}


def recipients_for(register: Register, controller_id: str, categories: Collection[str]) -> list[dict]:
    """The recipients and categories of recipient of any of the controller's categories, from the
    register (Art. 15(1)(c): those the data "will be disclosed" to, not only those logged), as a
    person reads them: who, what they do, where, which of the categories, and when."""
    found = []
    for recipient in register.recipients:
        if shared := sorted(recipient.categories_for(controller_id) & set(categories)):
            found.append({"recipient": recipient.name, "kind": recipient.kind.value.replace("_", " "),
                          "role": recipient.role, "country": recipient.country, "categories": shared,
                          "when": _WHEN_ORDERED.get(recipient.kind, "routinely"),
                          "safeguard": recipient.safeguard.reference if recipient.safeguard else ""})
    return found
